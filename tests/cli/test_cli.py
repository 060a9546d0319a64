"""The console command: start-up, help, and the convert commands end to end."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from datatools import __version__
from datatools.cli.main import app

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"
ANN = EXAMPLE / "_annotations.coco.json"
runner = CliRunner()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "datatools", *args], capture_output=True, text=True, timeout=120)


def test_help_starts_without_torch() -> None:
    code = ("import sys; from datatools.cli.main import app\n"
            "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n"
            "assert 'segmentation_models_pytorch' not in sys.modules\nprint('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("clean")


def test_a_command_builds_only_itself() -> None:
    """`datatools eda ...` imports and builds eda alone: the other commands' modules (and their libraries) stay
    unloaded, so every command starts faster; the root help still lists every command."""
    code = ("import sys\nfrom datatools.cli.main import COMMANDS, main\nsys.argv = ['datatools', 'eda', '--help']\n"
            "try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code == 0, exc.code\n"
            "loaded = sorted(n for n, (m, _, _) in COMMANDS.items() if m in sys.modules)\nprint(loaded)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "['eda']"
    root = run("--help")
    assert root.returncode == 0, root.stderr
    for name in ("validate", "convert", "eda", "edit", "folds", "augment", "clean", "pseudo-label", "train"):
        assert f" {name} " in root.stdout, name


def _commands() -> list[list[str]]:
    return [["validate"], ["convert", "masks"], ["convert", "coco"], ["convert", "from-masks"],
            ["convert", "polygon-json"], ["convert", "submission"], ["convert", "from-submission"],
            ["eda"], ["folds"], ["folds", "check"],
            *[["edit", cmd] for cmd in ("classes", "merge", "split", "subset")],
            *[["augment", op] for op in ("mosaic", "ricap", "copy-paste", "flip", "rotate", "albu")],
            *[["train", cmd] for cmd in ("fit", "evaluate", "predict", "soup")]]


@pytest.mark.parametrize("command", _commands(), ids=lambda c: " ".join(c))
def test_every_command_has_help_with_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example" in result.output and "datatools " + " ".join(command) in result.output


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"datatools {__version__}"


def test_convert_masks_then_back_to_coco(tmp_path: Path) -> None:
    r = run("convert", "masks", "--ann", str(ANN), "--images", str(EXAMPLE), "--out", str(tmp_path / "m"),
            "--workers", "2", "--no-progress")
    assert r.returncode == 0, r.stderr
    assert str(tmp_path / "m" / "ann_dir") in r.stdout
    r = run("convert", "from-masks", "--masks", str(tmp_path / "m"), "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    back = json.loads((tmp_path / "d" / "annotations.json").read_text())
    source = json.loads(ANN.read_text())
    assert len(back["images"]) == len(source["images"])
    assert {a["category_id"] for a in back["annotations"]} == {a["category_id"] for a in source["annotations"]}
    r = run("validate", "--data", str(tmp_path / "d"), "--no-decode")
    assert r.returncode == 0, r.stdout + r.stderr


def test_convert_coco_reindex_keeps_fields(tmp_path: Path) -> None:
    r = run("convert", "coco", "--ann", str(ANN), "--images", str(EXAMPLE), "--out", str(tmp_path / "d"),
            "--reindex")
    assert r.returncode == 0, r.stderr
    out = json.loads((tmp_path / "d" / "annotations.json").read_text())
    src = json.loads(ANN.read_text())
    assert [i["id"] for i in out["images"]] == list(range(1, len(src["images"]) + 1))
    assert [c["id"] for c in out["categories"]] == list(range(1, len(src["categories"]) + 1))
    assert out["info"] == src["info"] and out["licenses"] == src["licenses"]
    assert [i["date_captured"] for i in out["images"]] == [i["date_captured"] for i in src["images"]]
    assert len(list((tmp_path / "d" / "images").iterdir())) == len(src["images"])


def test_convert_polygon_json_keeps_the_patient_folder(tmp_path: Path) -> None:
    for patient in ("ID001", "ID002"):
        (tmp_path / "img" / patient).mkdir(parents=True)
        (tmp_path / "lab" / patient).mkdir(parents=True)
        for hand in ("L", "R"):
            cv2.imwrite(str(tmp_path / "img" / patient / f"x_{hand}.png"), np.zeros((40, 30), np.uint8))
            label = {"annotations": [{"label": "finger-1", "points": [[1, 1], [20, 1], [20, 30]], "type": "poly_seg"},
                                     {"label": "Radius", "points": [[5, 5], [25, 5], [25, 35], [5, 35]],
                                      "type": "poly_seg"}]}
            (tmp_path / "lab" / patient / f"x_{hand}.json").write_text(json.dumps(label))
    r = run("convert", "polygon-json", "--labels", str(tmp_path / "lab"), "--images", str(tmp_path / "img"),
            "--out", str(tmp_path / "d"))
    assert r.returncode == 0, r.stderr
    coco = json.loads((tmp_path / "d" / "annotations.json").read_text())
    assert [i["attributes"]["folder"] for i in coco["images"]] == ["ID001", "ID001", "ID002", "ID002"]
    assert [c["name"] for c in coco["categories"]] == ["finger-1", "Radius"]
    r = run("convert", "masks", "--data", str(tmp_path / "d"), "--multilabel", "--out", str(tmp_path / "m"),
            "--workers", "1")
    assert r.returncode == 0, r.stderr
    assert len(list((tmp_path / "m" / "ann_dir").rglob("*.npz"))) == 4

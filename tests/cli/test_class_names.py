"""One class display-name helper (issue 11 item 3): two categories with the same name, names matplotlib treats
specially (``$``, a mathtext command, a leading ``_``), non-ASCII and very long names go through folds, folds
check, eda and augment: no traceback, and every table and CSV tells the classes apart. The trainer's CSVs are
tested in ``tests/train/test_class_names_train.py``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.classes import display_names, plot_label

TRAIN = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
LONG = "шприц 注射器 " + "very-long-" * 12
NAMES = {0: "medical-waste", 1: "facade", 2: "facade", 3: r"_ampoule $\notacommand$ $5", 4: LONG}
SHOWN = {0: "medical-waste", 1: "facade (id 1)", 2: "facade (id 2)", 3: NAMES[3], 4: LONG}
runner = CliRunner()


def test_display_names_and_plot_labels() -> None:
    assert display_names([(0, "facade"), (3, "facade"), (5, "door"), (None, "door")]) == [
        "facade (id 0)", "facade (id 3)", "door (id 5)", "door"]
    assert plot_label("$5 _x") == r"\$5 _x"
    assert plot_label("_hidden").startswith("\u200b_")
    assert len(plot_label(LONG)) == 32 and plot_label(LONG).endswith("\u2026")


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("odd")
    coco = json.loads((TRAIN / "_annotations.coco.json").read_text())
    coco["categories"] = [{"id": i, "name": n, "supercategory": "x"} for i, n in NAMES.items()]
    for img in coco["images"]:
        shutil.copyfile(TRAIN / img["file_name"], root / img["file_name"])
    (root / "annotations.json").write_text(json.dumps(coco, ensure_ascii=False), encoding="utf-8")
    return root


def _ok(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output and "Glyph" not in result.output
    return result.output


def test_folds_eda_augment_label_every_class_apart(odd: Path, tmp_path: Path) -> None:
    src = ["--ann", str(odd / "annotations.json"), "--images", str(odd)]
    _ok("folds", "--ann", str(odd / "annotations.json"), "--k", "3", "--out", str(tmp_path / "folds"),
        "--no-progress")
    balance = pd.read_csv(tmp_path / "folds" / "balance.csv")
    assert dict(zip(balance["category_id"], balance["class"], strict=True)) == SHOWN
    assert (tmp_path / "folds" / "balance.png").stat().st_size > 0
    _ok("folds", "check", "--folds", str(tmp_path / "folds" / "folds.parquet"), "--ann", str(odd / "annotations.json"),
        "--no-progress")

    _ok("eda", *src, "--folds", str(tmp_path / "folds" / "folds.parquet"), "--out", str(tmp_path / "eda"),
        "--no-progress", "--workers", "1", "--gallery", "1")
    classes = pd.read_parquet(tmp_path / "eda" / "classes.parquet")
    rows = classes[classes["category_id"].notna()]
    assert dict(zip(rows["category_id"].astype(int), rows["name"], strict=True)) == SHOWN
    per_fold = pd.read_parquet(tmp_path / "eda" / "fold_balance.parquet")
    assert set(per_fold["class"]) == set(SHOWN.values())

    printed = _ok("augment", "copy-paste", *src, "--classes", "facade", "-n", "3", "--out", str(tmp_path / "cp"),
                  "--no-progress", "--workers", "1")
    for label in ("facade (id 1): image share", "facade (id 2): image share", f"{LONG}: image share"):
        assert label in printed

"""The trainer's commands take the shared options: --skip-invalid, --progress/--no-progress, a list after --ckpt,
and --submission in the convert vocabulary (issue 11 items 12 and 13)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402

pytestmark = pytest.mark.train
runner = CliRunner()
FAST = ["--encoder", "resnet18", "--weights", "none", "--size", "64", "--batch", "4", "--workers", "0",
        "--no-progress"]


@pytest.fixture(scope="module")
def trained(tiny_multiclass: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(best.pt of a 1-epoch run, a copy of the validation folder with one annotation of an unknown class)."""
    train_dir, val_dir = tiny_multiclass
    root = tmp_path_factory.mktemp("trained")
    result = runner.invoke(app, ["train", "fit", "--data", str(train_dir), "--epochs", "1", "--out",
                                 str(root / "run"), *FAST])
    assert result.exit_code == 0, result.output
    broken = root / "broken"
    shutil.copytree(val_dir, broken)
    coco = json.loads((broken / "annotations.json").read_text())
    coco["annotations"][0]["category_id"] = 999
    (broken / "annotations.json").write_text(json.dumps(coco))
    return root / "run" / "best.pt", broken


def _commands(ckpt: Path, data: Path, out: Path) -> dict[str, list[str]]:
    common = ["--data", str(data), "--out", str(out), "--workers", "0", "--no-progress"]
    return {
        "evaluate": ["train", "evaluate", "--ckpt", str(ckpt), *common],
        "predict": ["train", "predict", "--ckpt", str(ckpt), *common],
        "soup": ["train", "soup", "--ckpt", str(ckpt), str(ckpt), *common],  # two checkpoints after one --ckpt
    }


@pytest.mark.parametrize("command", ["evaluate", "predict", "soup"])
def test_skip_invalid_on_evaluate_predict_soup(trained: tuple[Path, Path], tmp_path: Path, command: str) -> None:
    ckpt, broken = trained
    out = tmp_path / "out"
    args = _commands(ckpt, broken, out)[command]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2, refused.output
    assert len(refused.stderr.splitlines()) == 1 and "matches no category" in refused.stderr and not out.exists()
    kept = runner.invoke(app, [*args, "--skip-invalid"])
    assert kept.exit_code == 0, kept.output
    assert "--skip-invalid dropped 1 record(s)" in kept.stderr
    assert out.exists()


def test_predict_submission_old_names_still_work(trained: tuple[Path, Path], tiny_multiclass: tuple[Path, Path],
                                                 tmp_path: Path) -> None:
    ckpt, _ = trained
    _, val_dir = tiny_multiclass
    csvs = {}
    for style in ("class-ids", "trash"):
        out = tmp_path / style
        result = runner.invoke(app, ["train", "predict", "--ckpt", str(ckpt), "--images", str(val_dir / "images"),
                                     "--submission", style, "--submission-size", "16", "--out", str(out),
                                     "--workers", "0", "--no-progress"])
        assert result.exit_code == 0, result.output
        assert ("now called 'class-ids'" in result.stderr) == (style == "trash")
        csvs[style] = (out / "submission.csv").read_bytes()
        assert json.loads((out / "predict.json").read_text())["submission"] == "class-ids"
    assert csvs["class-ids"] == csvs["trash"]

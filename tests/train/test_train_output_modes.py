"""The trainer's outputs (run folder, checkpoints, evaluate and predict folders, submission CSV) have the mode a
plain ``open()`` / ``mkdir()`` gives under the user's umask (issue 11 item 5)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from output_modes import wrong_modes  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402

pytestmark = pytest.mark.train
FAST = ["--workers", "0", "--no-progress"]


def _train(mask: int, *args: str) -> None:
    old = os.umask(mask)
    try:
        result = CliRunner().invoke(app, ["train", *args, *FAST])
    finally:
        os.umask(old)
    assert result.exit_code == 0, result.output


def test_train_commands_write_with_the_umask(tiny_multiclass: tuple[Path, Path], tmp_path: Path) -> None:
    train_dir, val_dir = tiny_multiclass
    run = tmp_path / "fit" / "run"
    _train(0o022, "fit", "--data", str(train_dir), "--val-data", str(val_dir), "--encoder", "resnet18", "--weights",
           "none", "--size", "64", "--batch", "4", "--epochs", "1", "--out", str(run))
    assert {"best.pt", "last.pt", "config.json", "history.csv", "cache"} <= {p.name for p in run.iterdir()}
    assert wrong_modes(run.parent, 0o022) == []
    for mask in (0o022, 0o077):  # one training, the other commands under both masks
        out = tmp_path / f"umask{mask:03o}"
        _train(mask, "evaluate", "--ckpt", str(run / "best.pt"), "--data", str(val_dir), "--out", str(out / "eval"))
        _train(mask, "predict", "--ckpt", str(run / "best.pt"), "--images", str(val_dir / "images"), "--submission",
               "trash", "--out", str(out / "pred"))
        assert (out / "pred" / "submission.csv").is_file() and (out / "eval" / "metrics.json").is_file()
        assert wrong_modes(out, mask) == []

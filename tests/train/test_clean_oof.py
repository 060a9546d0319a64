"""``clean --ckpt ... --folds``: each checkpoint scores only its validation fold, through train predict's loop, and
gives exactly what ``clean --probs`` gives on the probabilities ``train predict --save-probs`` writes per fold."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from tiny_shapes import write_dataset  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402

pytestmark = pytest.mark.train
runner = CliRunner()


def invoke(*args: str) -> None:
    result = runner.invoke(app, [*args, "--no-progress"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"


def test_ckpt_per_fold_equals_probs_from_predict_per_fold(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "ds", 12, multilabel=False)
    folds = tmp_path / "folds"
    invoke("folds", "--data", str(data), "--k", "2", "--seed", "0", "--out", str(folds))
    ckpts = []
    for fold in (0, 1):
        invoke("train", "fit", "--data", str(data), "--folds", str(folds / "folds.parquet"), "--fold", str(fold),
               "--arch", "Unet", "--encoder", "resnet18", "--weights", "none", "--mode", "multiclass", "--size", "64",
               "--epochs", "1", "--batch", "4", "--workers", "0", "--device", "cpu",
               "--out", str(tmp_path / f"r{fold}"))
        ckpts += ["--ckpt", str(tmp_path / f"r{fold}" / "best.pt")]
    invoke("clean", "--data", str(data), "--out", str(tmp_path / "a"), "--checks", "labels", *ckpts, "--folds",
           str(folds / "folds.parquet"), "--device", "cpu", "--workers", "1")
    oof = tmp_path / "oof"
    for fold in (0, 1):
        invoke("train", "predict", "--ckpt", str(tmp_path / f"r{fold}" / "best.pt"), "--ann",
               str(folds / f"val_fold{fold}.json"), "--images", str(data / "images"), "--save-probs", "--probs-dtype",
               "float16", "--device", "cpu", "--out", str(tmp_path / f"p{fold}"))
        shutil.copytree(tmp_path / f"p{fold}" / "probs", oof, dirs_exist_ok=True)
    invoke("clean", "--data", str(data), "--out", str(tmp_path / "b"), "--checks", "labels", "--probs", str(oof),
           "--workers", "1")
    a = pd.read_parquet(tmp_path / "a" / "label_scores.parquet")
    b = pd.read_parquet(tmp_path / "b" / "label_scores.parquet")
    assert (a["level"] == "image").sum() == 12 and (a["level"] == "annotation").sum() > 0
    pd.testing.assert_frame_equal(a, b)
    assert (tmp_path / "a" / "findings.parquet").read_bytes() == (tmp_path / "b" / "findings.parquet").read_bytes()
    assert not list(tmp_path.glob(".clean-oof.*"))  # the scratch predictions are gone


def test_ckpt_count_must_match_the_folds(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "ds", 6, multilabel=False)
    folds = tmp_path / "folds"
    invoke("folds", "--data", str(data), "--k", "2", "--seed", "0", "--out", str(folds))
    fake = tmp_path / "f.pt"
    fake.write_bytes(b"x")
    result = runner.invoke(app, ["clean", "--data", str(data), "--out", str(tmp_path / "o"), "--ckpt", str(fake),
                                 "--folds", str(folds / "folds.parquet")])
    assert result.exit_code == 2 and "2 folds but 1 --ckpt given" in result.stderr
    # label issues need one checkpoint per fold: without --folds they are refused before any work
    result = runner.invoke(app, ["clean", "--data", str(data), "--out", str(tmp_path / "o"), "--ckpt", str(fake),
                                 "--checks", "labels"])
    assert result.exit_code == 2 and "--checks labels needs" in result.stderr and "--folds" in result.stderr
    # --ckpt alone is the encoder-feature outlier check: a file that is no checkpoint is one line
    result = runner.invoke(app, ["clean", "--data", str(data), "--out", str(tmp_path / "o"), "--ckpt", str(fake)])
    assert result.exit_code == 2 and "not a datatools checkpoint" in result.stderr
    assert not (tmp_path / "o").exists()

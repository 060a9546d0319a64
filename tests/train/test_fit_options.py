"""``fit --normalize/--stats``, ``--sampler repeat-factor``, ``--class-weights``, ``--early-stop``, ``--log
tensorboard`` and the per-class curves, through the real CLI on the tiny shapes (one shared 3-epoch run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("segmentation_models_pytorch")

from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools_train.checkpoint import load_checkpoint  # noqa: E402
from datatools_train.normalization import dataset_mean_std, parse_normalize, stats_mean_std  # noqa: E402

runner = CliRunner()
FAST = ["--encoder", "resnet18", "--weights", "none", "--size", "64", "--batch", "4", "--workers", "0",
        "--no-progress"]


def _numpy_mean_std(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    pixels = np.concatenate([np.asarray(Image.open(p).convert("RGB"), dtype=np.float64).reshape(-1, 3)
                             for p in sorted((folder / "images").iterdir())])
    return pixels.mean(axis=0) / 255, pixels.std(axis=0) / 255


@pytest.fixture(scope="module")
def run(tiny_multiclass: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    train_dir, val_dir = tiny_multiclass
    out = tmp_path_factory.mktemp("fit_options") / "run"
    result = runner.invoke(app, ["train", "fit", "--data", str(train_dir), "--val-data", str(val_dir), "--epochs",
                                 "3", "--sampler", "repeat-factor", "--repeat-threshold", "1", "--class-weights",
                                 "auto", "--early-stop", "1", "--log", "tensorboard", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    return out, result.stderr


def test_weights_none_normalises_with_the_dataset_and_the_checkpoint_records_it(
        run: tuple[Path, str], tiny_multiclass: tuple[Path, Path]) -> None:
    out, _ = run
    mean, std = _numpy_mean_std(tiny_multiclass[0])
    ckpt = load_checkpoint(out / "best.pt")
    np.testing.assert_allclose(ckpt["spec"]["mean"], mean, atol=1e-9)
    np.testing.assert_allclose(ckpt["spec"]["std"], std, atol=1e-9)
    assert ckpt["config"]["normalize"] == "dataset"
    assert json.loads((out / "config.json").read_text())["normalize"] == "dataset"


def test_sampler_weights_early_stop_and_logs(run: tuple[Path, str]) -> None:
    out, log = run
    assert "repeat-factor sampling, threshold 1: red x1.00, blue x1.21" in log  # sqrt(1 / (11/16))
    assert "class weights: background" in log
    import csv

    with (out / "history.csv").open() as f:
        table = list(csv.DictReader(f))
    rows = (out / "history.csv").read_text().splitlines()[1:]
    scores = [float(r["val_miou"]) for r in table]
    best_epoch, expected = 0, 3  # the early-stop rule, replayed on the scores the run wrote
    for epoch, s in enumerate(scores, 1):
        if epoch == 1 or s > scores[best_epoch - 1]:
            best_epoch = epoch
        if epoch - best_epoch >= 1:
            expected = epoch
            break
    assert len(scores) == expected
    assert ("early stop: no better miou for 1 epochs" in log) == (expected < 3)

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    loss = [(e.step, e.value) for e in events.Scalars("train_loss")]
    history_loss = [float(r["train_loss"]) for r in table]
    assert [s for s, _ in loss] == list(range(1, len(rows) + 1))
    np.testing.assert_allclose([v for _, v in loss], history_loss, rtol=1e-5)
    assert "miou/red" in events.Tags()["scalars"]
    with Image.open(out / "class_curves.png") as im:
        assert im.format == "PNG" and im.width > 300


def test_dataset_mean_std_and_parsing(tiny_multiclass: tuple[Path, Path], tmp_path: Path) -> None:
    train_dir = tiny_multiclass[0]
    mean, std = _numpy_mean_std(train_dir)
    got_mean, got_std = dataset_mean_std([Dataset.load(train_dir / "annotations.json", train_dir / "images")],
                                         workers=1, progress=False)
    np.testing.assert_allclose(got_mean, mean, atol=1e-9)
    np.testing.assert_allclose(got_std, std, atol=1e-9)
    assert parse_normalize("0.5,0.25") == ("values", (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    assert parse_normalize("IMAGENET")[0] == "imagenet"
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"normalize": {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}}))
    assert stats_mean_std(summary) == ((0.1, 0.2, 0.3), (0.4, 0.5, 0.6))


def test_stats_file_and_explicit_values_reach_the_checkpoint(tiny_multiclass: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    train_dir, _ = tiny_multiclass
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"normalize": {"mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6]}}))
    result = runner.invoke(app, ["train", "fit", "--data", str(train_dir), "--epochs", "1", "--normalize",
                                 "dataset", "--stats", str(summary), "--out", str(tmp_path / "a"), *FAST])
    assert result.exit_code == 0, result.output
    spec = load_checkpoint(tmp_path / "a" / "best.pt")["spec"]
    assert (spec["mean"], spec["std"]) == ([0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    resumed = runner.invoke(app, ["train", "fit", "--data", str(train_dir), "--epochs", "2", "--resume", "--out",
                                  str(tmp_path / "a"), *FAST])  # --normalize auto now: the run keeps its values
    assert resumed.exit_code == 0, resumed.output
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (config["normalize"], config["mean"], config["std"]) == ("dataset", [0.1, 0.2, 0.3], [0.4, 0.5, 0.6])
    assert load_checkpoint(tmp_path / "a" / "last.pt")["config"]["mean"] == [0.1, 0.2, 0.3]
    summary.write_text("{}")
    bad = runner.invoke(app, ["train", "fit", "--data", str(train_dir), "--normalize", "dataset", "--stats",
                              str(summary), "--out", str(tmp_path / "b"), *FAST])
    assert bad.exit_code == 2 and "summary.json: not an eda summary.json" in bad.stderr
    assert not (tmp_path / "b").exists()


def test_early_stop_needs_validation_and_weights_need_ce(tiny_multiclass: tuple[Path, Path], tmp_path: Path) -> None:
    train_dir, _ = tiny_multiclass
    args = ["train", "fit", "--data", str(train_dir), "--out", str(tmp_path / "c"), *FAST]
    bad = runner.invoke(app, [*args, "--early-stop", "2"])
    assert bad.exit_code == 2 and "--early-stop watches the validation score" in bad.stderr
    bad = runner.invoke(app, [*args, "--class-weights", "inverse", "--loss", "dice"])
    assert bad.exit_code == 2 and "--class-weights apply to the ce part" in bad.stderr
    assert not (tmp_path / "c").exists()

"""End to end on tiny datasets (CPU): fit -> evaluate -> predict with TTA -> submission CSV that decodes back."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from tiny_shapes import write_dataset  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.classes import ClassMap  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools.core.masks import rasterize_multilabel, rasterize_semantic  # noqa: E402
from datatools.formats.submission import read_class_ids_csv, read_rle_csv  # noqa: E402
from datatools_train.checkpoint import load_checkpoint  # noqa: E402
from datatools_train.predict import load_probs, read_prediction  # noqa: E402

pytestmark = pytest.mark.train
runner = CliRunner()
FAST = ["--encoder", "resnet18", "--weights", "none", "--size", "64", "--batch", "4", "--lr", "1e-3",
        "--workers", "0", "--no-progress"]


def invoke(*args: str) -> str:
    result = runner.invoke(app, ["train", *args])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def _iou_brute_force(preds: dict[str, np.ndarray], truths: dict[str, np.ndarray], k: int) -> list[float]:
    """Dataset-level IoU per class value 0..k-1 with plain numpy; NaN where a class is nowhere."""
    inter, union = np.zeros(k), np.zeros(k)
    for name, truth in truths.items():
        keep = truth != 255
        for c in range(k):
            p, t = (preds[name] == c) & keep, (truth == c) & keep
            inter[c] += (p & t).sum()
            union[c] += (p | t).sum()
    return [i / u if u else float("nan") for i, u in zip(inter, union, strict=True)]


def test_multiclass_fit_resume_evaluate_predict_submission(tiny_multiclass: tuple[Path, Path], tmp_path: Path) -> None:
    train_dir, val_dir = tiny_multiclass
    run = tmp_path / "run"
    invoke("fit", "--data", str(train_dir), "--val-data", str(val_dir), "--epochs", "1", "--out", str(run), *FAST)
    epoch1 = tmp_path / "epoch1.pt"
    shutil.copyfile(run / "last.pt", epoch1)
    # --resume continues the same run to epoch 2 (history keeps epoch 1)
    invoke("fit", "--data", str(train_dir), "--val-data", str(val_dir), "--epochs", "2", "--out", str(run),
           "--resume", *FAST)
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [1, 2]
    assert {"train_loss", "val_loss", "val_miou", "miou/red", "miou/blue", "lr"} <= set(history.columns)
    for name in ("best.pt", "last.pt", "curves.png", "per_class.csv", "classes.json", "config.json"):
        assert (run / name).is_file(), name
    assert any((run / "cache").rglob("*.png")), "masks are cached after first use"

    ckpt = load_checkpoint(run / "best.pt")
    spec = ckpt["spec"]
    assert (spec["arch"], spec["encoder"], spec["mode"], spec["size"]) == ("Unet", "resnet18", "multiclass", 64)
    assert spec["classes"] == json.loads((run / "classes.json").read_text())
    assert len(spec["mean"]) == len(spec["std"]) == 3

    ds = Dataset.from_dir(val_dir)
    cm = ds.class_map()
    truths = {img["file_name"]: rasterize_semantic(ds.annotations_of(img["id"]), img["height"], img["width"], cm)
              for img in ds.images}

    # evaluate (no TTA) against a numpy IoU of the masks that predict (no TTA) writes
    out = invoke("evaluate", "--ckpt", str(run / "best.pt"), "--data", str(val_dir), "--out", str(tmp_path / "ev"),
                 "--workers", "0", "--no-progress")
    assert "all-background baseline" in out
    invoke("predict", "--ckpt", str(run / "best.pt"), "--data", str(val_dir), "--out", str(tmp_path / "plain"),
           "--workers", "0", "--no-progress")
    preds = {name: read_prediction(tmp_path / "plain", name) for name in truths}
    expected = _iou_brute_force(preds, truths, 3)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    got = [metrics["per_class"][n]["iou"] for n in ("background", "red", "blue")]
    np.testing.assert_allclose([np.nan if g is None else g for g in got], expected, atol=1e-6)
    assert metrics["score"] == pytest.approx(np.nanmean(expected), abs=1e-6)
    base = _iou_brute_force({n: np.zeros_like(t) for n, t in truths.items()}, truths, 3)
    assert metrics["baseline"]["score"] == pytest.approx(np.nanmean(base), abs=1e-6)
    per_image = pd.read_parquet(tmp_path / "ev" / "per_image.parquet")
    assert len(per_image) == len(truths) and {"image_id", "file_name", "score", "miou/red"} <= set(per_image)
    confusion = pd.read_csv(tmp_path / "ev" / "confusion.csv", index_col=0)
    assert confusion.to_numpy().sum() == sum(t.size for t in truths.values())
    assert len(list((tmp_path / "ev" / "gallery").glob("*.jpg"))) == len(truths)

    # predict: an ensemble of two checkpoints with batched TTA, probabilities, and the trash CSV
    pred = tmp_path / "pred"
    invoke("predict", "--ckpt", str(run / "best.pt"), "--ckpt", str(epoch1), "--images",
           str(val_dir / "images"), "--out", str(pred), "--tta", "hflip,vflip,rot90,scale:0.75,1", "--save-probs",
           "--submission", "class-ids", "--workers", "0", "--no-progress")
    decoded = read_class_ids_csv(pred / "submission.csv", size=256)
    assert sorted(decoded) == sorted(truths)
    for name, mask in decoded.items():
        predicted = read_prediction(pred, name)
        assert predicted.shape == (64, 64) and set(np.unique(predicted)) <= {0, 1, 2}
        np.testing.assert_array_equal(mask, cv2.resize(predicted, (256, 256), interpolation=cv2.INTER_NEAREST))
        probs, shape_hw = load_probs(pred / "probs" / name.replace(".png", ".npz"))
        assert probs.shape == (3, 64, 64) and shape_hw == (64, 64)
        assert np.allclose(probs.sum(axis=0), 1.0, atol=0.02)  # uint8-quantised softmax
        assert (probs.argmax(axis=0) == predicted).mean() > 0.97
    assert json.loads((pred / "predict.json").read_text())["tta"]["views"] == ["identity", "hflip", "vflip",
                                                                               "rot90", "rot180", "rot270"]

    # soups of the two checkpoints, scored on fold 1 of a folds table
    train_ds = Dataset.from_dir(train_dir)
    ids = [img["id"] for img in train_ds.images]
    pd.DataFrame({"image_id": ids, "file_name": [img["file_name"] for img in train_ds.images],
                  "group": [str(i) for i in ids], "fold": [k % 2 for k in range(len(ids))]}).to_parquet(
        tmp_path / "folds.parquet")
    second, first = str(run / "last.pt"), str(epoch1)  # epochs 2 and 1: they differ (best.pt may be epoch 1's)
    invoke("soup", "--ckpt", second, "--ckpt", first, "--data", str(train_dir), "--folds",
           str(tmp_path / "folds.parquet"), "--fold", "1", "--greedy", "--out", str(tmp_path / "soup"),
           "--workers", "0")
    report = json.loads((tmp_path / "soup" / "soup.json").read_text())
    assert set(report["members"]) == {second, first}
    assert report["greedy"] >= max(report["members"].values()) - 1e-9  # greedy never drops below its best member
    uniform = load_checkpoint(tmp_path / "soup" / "uniform.pt")["model"]
    a, b = load_checkpoint(second)["model"], load_checkpoint(first)["model"]
    name = next(k for k, v in a.items() if v.is_floating_point() and not torch.equal(v, b[k]))
    torch.testing.assert_close(uniform[name], (a[name] + b[name]) / 2)


def test_multilabel_fit_evaluate_thresholds_predict_rle(tiny_multilabel: tuple[Path, Path], tmp_path: Path) -> None:
    train_dir, val_dir = tiny_multilabel
    run = tmp_path / "run"
    extra = write_dataset(tmp_path / "extra", 4, multilabel=True, seed=2)  # e.g. an augmented copy
    out = invoke("fit", "--data", str(train_dir), "--val-data", str(val_dir), "--extra", str(extra), "--epochs", "2",
                 "--loss", "focal+dice", "--out", str(run), *FAST)
    assert "on 20 images" in out  # 16 + 4 extra, training only
    assert json.loads((run / "config.json").read_text())["mode"] == "multilabel"  # picked from the overlap
    history = pd.read_csv(run / "history.csv")
    assert history["epoch"].tolist() == [1, 2] and "val_dice" in history and "dice/core" in history

    invoke("evaluate", "--ckpt", str(run / "best.pt"), "--data", str(val_dir), "--out", str(tmp_path / "ev"),
           "--workers", "0", "--no-progress")
    thresholds = json.loads((tmp_path / "ev" / "thresholds.json").read_text())
    assert set(thresholds["thresholds"]) == {"big", "core", "side"}
    for name, dice in thresholds["dice_at_threshold"].items():  # the search never does worse than 0.5
        if dice is not None and thresholds["dice_at_0.5"][name] is not None:
            assert dice >= thresholds["dice_at_0.5"][name] - 1e-9

    pred = tmp_path / "pred"
    out = invoke("predict", "--ckpt", str(run / "best.pt"), "--data", str(val_dir), "--out", str(pred), "--tta",
                 "hflip,scale:1,1.5", "--thresholds", "auto", "--val-data", str(val_dir), "--submission", "rle",
                 "--workers", "0", "--no-progress")
    assert "thresholds" in out
    ds = Dataset.from_dir(val_dir)
    names = [c.name for c in ClassMap.from_categories(ds.categories).classes]
    decoded = read_rle_csv(pred / "submission.csv", (64, 64))
    assert len(decoded) == len(ds.images) * len(names)
    for img in ds.images:
        planes = read_prediction(pred, img["file_name"])
        assert planes.shape == (3, 64, 64) and planes.dtype == bool
        for k, name in enumerate(names):
            np.testing.assert_array_equal(decoded[(img["file_name"], name)], planes[k])
    with open(pred / "submission.csv", newline="") as fh:
        assert next(csv.reader(fh)) == ["image_name", "class", "rle"]
    # the fixture's truth overlaps: the model is asked for overlapping planes, not one class per pixel
    truth = rasterize_multilabel(ds.annotations_of(ds.images[0]["id"]), 64, 64, ds.class_map())
    assert (truth.sum(axis=0) >= 2).any()


def test_torchrun_two_processes_on_cpu(tiny_multiclass: tuple[Path, Path], tmp_path: Path) -> None:
    """The DistributedDataParallel path (gloo on the CPU): each process trains on half of every epoch."""
    import subprocess
    import sys

    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    if torchrun is None:
        pytest.skip("torchrun not installed")
    train_dir, val_dir = tiny_multiclass
    out = subprocess.run([torchrun, "--nproc-per-node", "2", "-m", "train", "fit", "--data", str(train_dir),
                          "--val-data", str(val_dir), "--epochs", "1", "--out", str(tmp_path / "run"), *FAST],
                         capture_output=True, text=True, timeout=240)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.count("best miou") == 1  # only rank 0 reports
    history = pd.read_csv(tmp_path / "run" / "history.csv")
    assert history["epoch"].tolist() == [1]
    assert load_checkpoint(tmp_path / "run" / "best.pt")["spec"]["arch"] == "Unet"

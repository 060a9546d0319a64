"""Bad input to ``datatools pseudo-label``: one ``error:`` line naming the problem, exit 2, nothing written."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pseudo_fixtures import smooth_probs, write_images, write_probs
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset

runner = CliRunner()
HW = (24, 32)
CATS = [{"id": 7, "name": "red"}, {"id": 3, "name": "blue"}]


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    """(dataset folder, probs folder of its images)."""
    data = write_images(tmp_path / "data", 3, HW, CATS)
    rng = np.random.default_rng(0)
    write_probs(tmp_path / "pred", {img["file_name"]: smooth_probs(rng, 3, HW, False)
                                    for img in Dataset.from_dir(data).images}, CATS, "multiclass")
    return data, tmp_path / "pred"


def refused(tmp_path: Path, *args: str, says: str) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["pseudo-label", *args, "--out", str(out), "--no-progress", "--workers", "1"])
    assert result.exit_code == 2, f"{result.output}\n{result.exception!r}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and says in lines[0], result.stderr
    assert not out.exists()
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".out.")], "no staging folder left behind"


@pytest.mark.parametrize(("extra", "says"), [
    (["--threshold", "0"], "--threshold: 0.0 is outside (0, 1]"),
    (["--threshold", "1.5"], "--threshold: 1.5 is outside (0, 1]"),
    (["--class-threshold", "red=0"], "--class-threshold red: 0.0 is outside (0, 1]"),
    (["--class-threshold", "red"], "write NAME=T"),
    (["--class-threshold", "purple=0.8"], "--class-threshold purple: not a class"),
    (["--uncertain", "0"], "--uncertain: 0.0 is outside (0, 1]"),
    (["--min-confident", "2"], "--min-confident: 2.0 is outside [0, 1]"),
    (["--tta", "hflip"], "--tta applies to --ckpt only"),
    (["--sliding-window", "64"], "--sliding-window applies to --ckpt only"),
])
def test_bad_options(inputs: tuple[Path, Path], tmp_path: Path, extra: list[str], says: str) -> None:
    data, pred = inputs
    refused(tmp_path, "--probs", str(pred), "--data", str(data), *extra, says=says)


def test_one_source_and_images_are_needed(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    data, pred = inputs
    refused(tmp_path, "--data", str(data), says="exactly one source")
    (tmp_path / "r.json").write_text("[]")
    refused(tmp_path, "--predictions", str(tmp_path / "r.json"), "--data", str(data), "--uncertain", "0.95",
            says="--uncertain: 0.95 must lie in (0, --threshold 0.9]")
    refused(tmp_path, "--probs", str(pred), "--predictions", str(pred), "--data", str(data),
            says="got --probs, --predictions")
    refused(tmp_path, "--probs", str(pred), says="give the images to label")
    refused(tmp_path, "--predictions", str(tmp_path / "r.json"), "--images", str(data / "images"),
            says="--predictions needs the COCO dataset")


def _rewrite(pred: Path, name: str, **arrays: Any) -> None:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    (pred / "probs" / name).write_bytes(buf.getvalue())


@pytest.mark.parametrize(("breaks", "says"), [
    (lambda p: (p / "probs" / "im0.npz").unlink(), "no probabilities for 1 of the 3 images (first: im0.png)"),
    (lambda p: _rewrite(p, "im0.npz", probs=np.zeros((3, 24, 32), np.float16), shape_hw=np.array([24, 30])),
     "probabilities of a 30x24 image, im0.png is 32x24"),
    (lambda p: _rewrite(p, "im0.npz", probs=np.zeros((4, 24, 32), np.float16), shape_hw=np.array([24, 32])),
     "probabilities of shape [4, 24, 32], expected 3 channels"),
    (lambda p: (p / "classes.json").write_text(json.dumps(
        [{"value": 0, "category_id": None, "name": "background", "color": [0, 0, 0]},
         {"value": 1, "category_id": 7, "name": "red", "color": [1, 1, 1]},
         {"value": 2, "category_id": 4, "name": "blue", "color": [2, 2, 2]}])), "differ from the dataset's categories"),
    (lambda p: (p / "predict.json").unlink(), "predict.json: unreadable"),
])
def test_probability_folder_of_other_images_shapes_or_classes(inputs: tuple[Path, Path], tmp_path: Path,
                                                              breaks: Callable[[Path], Any], says: str) -> None:
    data, pred = inputs
    breaks(pred)
    refused(tmp_path, "--probs", str(pred), "--data", str(data), says=says)


def _results(image_id: Any = 50, category_id: Any = 7, size: list[int] | None = None) -> list[dict[str, Any]]:
    return [{"image_id": image_id, "category_id": category_id, "score": 0.95,
             "segmentation": {"size": size or list(HW), "counts": "0"}}]


@pytest.mark.parametrize(("results", "says"), [
    (_results(image_id=999), "image_id 999 is not an image of"),
    (_results(category_id=5), "has category_id 5, not a category of the dataset"),
    (_results(size=[10, 10]), "has a mask of size [10, 10], the image is [height, width] = [24, 32]"),
    ([{"image_id": 50, "category_id": 7, "score": 0.9, "bbox": [0, 0, 2, 2]}], "instance masks are needed"),
    ({"annotations": []}, "a COCO results file is a JSON list"),
])
def test_results_file_with_unknown_ids(inputs: tuple[Path, Path], tmp_path: Path, results: Any, says: str) -> None:
    data, _ = inputs
    (tmp_path / "res.json").write_text(json.dumps(results))
    refused(tmp_path, "--predictions", str(tmp_path / "res.json"), "--data", str(data), says=says)


def test_merge_with_other_categories(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    data, pred = inputs
    other = write_images(tmp_path / "other", 1, HW, [{"id": 7, "name": "red"}])
    refused(tmp_path, "--probs", str(pred), "--data", str(data), "--merge-with", str(other),
            says="--merge-with categories [(7, 'red')] differ")


def test_checkpoint_of_other_classes(inputs: tuple[Path, Path], tmp_path: Path) -> None:
    pytest.importorskip("segmentation_models_pytorch")
    from datatools_train.checkpoint import ModelSpec, save_checkpoint
    from datatools_train.config import Mode
    from datatools_train.model import create_model

    data, _ = inputs
    classes = ({"value": 0, "category_id": None, "name": "background", "color": [0, 0, 0]},
               {"value": 1, "category_id": 7, "name": "red", "color": [1, 1, 1]},
               {"value": 2, "category_id": 3, "name": "green", "color": [2, 2, 2]})
    spec = ModelSpec("Unet", "resnet18", classes, Mode.MULTICLASS, (0.5,) * 3, (0.2,) * 3, 32)
    save_checkpoint(tmp_path / "m.pt", spec, create_model("Unet", "resnet18", classes=3))
    refused(tmp_path, "--ckpt", str(tmp_path / "m.pt"), "--data", str(data), "--device", "cpu",
            says="classes [(7, 'red'), (3, 'green')] differ from the dataset's categories [(7, 'red'), (3, 'blue')]")
    refused(tmp_path, "--ckpt", str(tmp_path / "missing.pt"), "--data", str(data), says="checkpoint not found")
    refused(tmp_path, "--ckpt", str(tmp_path / "m.pt"), "--data", str(data), "--tta", "spin",
            says="--tta: unknown TTA view 'spin'")

"""A class absent from the evaluation truth (the Roboflow placeholder category id 0) is reported, marked absent, and
left out of the model's mean and the baseline's alike (issue 11 item 10)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools_train import ensemble  # noqa: E402
from datatools_train.checkpoint import ModelSpec, save_checkpoint  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.model import create_model  # noqa: E402

pytestmark = pytest.mark.train
SIDE = 8


def _dataset(folder: Path) -> Path:
    """Two 8x8 images; categories: the empty placeholder (id 0) and ``red``; image a holds a 4x4 red square."""
    (folder / "images").mkdir(parents=True)
    for name in ("a.png", "b.png"):
        cv2.imwrite(str(folder / "images" / name), np.zeros((SIDE, SIDE, 3), np.uint8))
    square = [0.0, 0.0, 4.0, 0.0, 4.0, 4.0, 0.0, 4.0]
    coco = {"images": [{"id": 7, "file_name": "a.png", "width": SIDE, "height": SIDE},
                       {"id": 9, "file_name": "b.png", "width": SIDE, "height": SIDE}],
            "categories": [{"id": 0, "name": "medical-waste", "supercategory": "none"},
                           {"id": 1, "name": "red", "supercategory": "medical-waste"}],
            "annotations": [{"id": 1, "image_id": 7, "category_id": 1, "segmentation": [square], "area": 16.0,
                             "bbox": [0, 0, 4, 4], "iscrowd": 0}]}
    (folder / "annotations.json").write_text(json.dumps(coco))
    return folder


def _hand_made(values: dict[str, int]) -> dict[str, np.ndarray]:
    """The truth of each image, with a few background pixels predicted as the placeholder class."""
    a = np.zeros((SIDE, SIDE), np.uint8)
    a[:4, :4] = values["red"]       # the red square, exactly
    a[7, 4:8] = values["medical-waste"]  # 4 false positives of the placeholder
    b = np.zeros((SIDE, SIDE), np.uint8)
    b[0, :] = values["medical-waste"]    # 8 more
    return {"a.png": a, "b.png": b}


def test_placeholder_class_is_left_out_of_both_means(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = _dataset(tmp_path / "ds")
    ds = Dataset.from_dir(data)
    classes = tuple(ds.class_map().to_json())
    values = {c["name"]: int(c["value"]) for c in classes}
    spec = ModelSpec("Unet", "resnet18", classes, Mode.MULTICLASS, (0.5,) * 3, (0.25,) * 3, 32)
    ckpt = tmp_path / "model.pt"
    save_checkpoint(ckpt, spec, create_model("Unet", "resnet18", classes=spec.num_outputs, weights=None),
                    config={"overlap": "smaller-on-top"})
    masks = _hand_made(values)

    def predictions(self: Any, items: Sequence[Any], **_: Any) -> Iterator[Any]:
        for item in items:
            mask = masks[item.file_name]
            full = torch.nn.functional.one_hot(torch.from_numpy(mask).long(), 3).permute(2, 0, 1).float()
            yield ensemble.Prediction(item, full, full, mask)

    monkeypatch.setattr(ensemble.Ensemble, "predictions", predictions)
    out = tmp_path / "eval"
    result = CliRunner().invoke(app, ["train", "evaluate", "--ckpt", str(ckpt), "--data", str(data), "--out",
                                      str(out), "--workers", "0", "--no-progress", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    # by hand: 128 pixels; truth background 48 + 64 = 112, red 16, placeholder 0; predicted placeholder 12
    bg_iou, red_iou, placeholder_iou = 100 / 112, 1.0, 0.0
    baseline_bg = 112 / 128  # all background: red IoU 0, placeholder nowhere
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["score"] == pytest.approx((bg_iou + red_iou) / 2, abs=1e-6)  # not (bg + 0 + red) / 3
    assert metrics["per_class"]["background"]["iou"] == pytest.approx(bg_iou, abs=1e-6)
    assert metrics["per_class"]["red"]["iou"] == pytest.approx(red_iou)
    assert metrics["per_class"]["medical-waste"] == {"iou": placeholder_iou, "dice": 0.0, "absent": True}
    assert metrics["absent_from_truth"] == ["medical-waste"]
    assert metrics["foreground"] == pytest.approx(red_iou)
    assert metrics["baseline"]["score"] == pytest.approx((baseline_bg + 0.0) / 2, abs=1e-6)
    rows = (out / "per_class.csv").read_text().splitlines()
    assert rows[0] == "class,iou,dice,absent"
    assert "medical-waste,0.0000,0.0000,true" in rows
    assert rows[-1].startswith(f"mean,{(bg_iou + red_iou) / 2:.4f},")
    # the printed table marks the class and the summary names it
    line = next(x for x in result.output.splitlines() if x.startswith("medical-waste"))
    assert "absent" in line
    assert "left out of both means: medical-waste" in result.output
    assert f"miou {(bg_iou + red_iou) / 2:.4f}" in result.output
    assert f"baseline {baseline_bg / 2:.4f}" in result.output

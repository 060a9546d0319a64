"""``train predict --mask-format gray`` writes the same class values as the palette default, in PNGs that
``cv2.IMREAD_UNCHANGED`` reads as values (issue 11 item 14)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools_train.checkpoint import ModelSpec, save_checkpoint  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.model import create_model  # noqa: E402

pytestmark = pytest.mark.train


def test_predict_gray_and_palette_masks_hold_the_same_values(tiny_multiclass: tuple[Path, Path],
                                                             tmp_path: Path) -> None:
    val_dir = tiny_multiclass[1]
    classes = tuple(Dataset.from_dir(val_dir).class_map().to_json())
    spec = ModelSpec("Unet", "resnet18", classes, Mode.MULTICLASS, (0.5,) * 3, (0.25,) * 3, 64)
    torch.manual_seed(0)
    model = create_model("Unet", "resnet18", classes=spec.num_outputs, weights=None)
    with torch.no_grad():  # an untrained model whose head still picks several classes over an image
        model.segmentation_head[0].weight.mul_(50)
    save_checkpoint(tmp_path / "m.pt", spec, model)
    outs = {}
    for fmt in ("palette", "gray"):
        outs[fmt] = tmp_path / fmt
        result = CliRunner().invoke(app, ["train", "predict", "--ckpt", str(tmp_path / "m.pt"), "--images",
                                          str(val_dir / "images"), "--out", str(outs[fmt]), "--mask-format", fmt,
                                          "--workers", "0", "--no-progress"])
        assert result.exit_code == 0, result.output
    assert json.loads((outs["gray"] / "predict.json").read_text())["mask_format"] == "gray"
    names = sorted(p.name for p in (outs["palette"] / "ann_dir").glob("*.png"))
    assert names and names == sorted(p.name for p in (outs["gray"] / "ann_dir").glob("*.png"))
    seen: set[int] = set()
    for name in names:
        with Image.open(outs["palette"] / "ann_dir" / name) as im:
            assert im.mode == "P"
            values = np.asarray(im)
        gray = cv2.imread(str(outs["gray"] / "ann_dir" / name), cv2.IMREAD_UNCHANGED)
        assert gray.ndim == 2 and np.array_equal(gray, values), name
        assert cv2.imread(str(outs["palette"] / "ann_dir" / name), cv2.IMREAD_UNCHANGED).ndim == 3
        seen |= set(np.unique(values).tolist())
    assert len(seen) > 1  # the comparison covered more than one class value

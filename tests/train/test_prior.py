"""A new model starts from the class prior of its training set, so a short run gets background right and says how
it compares with the all-background baseline (issue 11 item 17)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools.core.masks import rasterize_multilabel  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.model import create_model  # noqa: E402
from datatools_train.prior import class_prior, init_head_bias  # noqa: E402

pytestmark = pytest.mark.train


def test_class_prior_is_the_pixel_share_of_each_class(tiny_multilabel: tuple[Path, Path]) -> None:
    ds = Dataset.from_dir(tiny_multilabel[0])  # overlapping classes: every annotation counts once
    cm = ds.class_map()
    pixels = np.zeros(len(ds.categories))
    total = 0
    for img in ds.images:
        planes = rasterize_multilabel(ds.annotations_of(img["id"]), img["height"], img["width"], cm)
        pixels += planes.reshape(len(pixels), -1).sum(axis=1)
        total += img["height"] * img["width"]
    np.testing.assert_allclose(class_prior([ds]), pixels / total, rtol=1e-9)


def test_a_new_head_predicts_the_prior() -> None:
    torch.manual_seed(0)
    model = create_model("Unet", "resnet18", classes=4, weights=None).eval()
    prior = [0.05, 0.0, 0.02]  # the second class (a placeholder) has no pixels
    assert init_head_bias(model, prior, Mode.MULTICLASS)
    with torch.no_grad():
        probs = model(torch.randn(2, 3, 64, 64)).softmax(1)
    assert (probs.argmax(1) == 0).all()  # background everywhere
    share = probs.mean(dim=(0, 2, 3)).tolist()
    assert share[0] > 0.85 and share[2] < 1e-3  # the random weights blur the prior a little; no placeholder
    bias = model.segmentation_head[0].bias.tolist()
    assert bias == pytest.approx([math.log(0.93), math.log(0.05), math.log(1e-4), math.log(0.02)], rel=1e-5)


def test_a_short_fit_gets_background_right_and_compares_with_the_baseline(tiny_multiclass: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    train_dir, val_dir = tiny_multiclass
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "fit", "--data", str(train_dir), "--val-data", str(val_dir),
                                      "--encoder", "resnet18", "--weights", "none", "--size", "64", "--batch", "8",
                                      "--epochs", "1", "--workers", "0", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    history = pd.read_csv(out / "history.csv")
    # two steps from random weights: the head's prior alone gets background right (it was ~0.3 before)
    assert history["miou/background"].iloc[0] > 0.8, history.iloc[0].to_dict()
    line = next(x for x in result.output.splitlines() if x.startswith("all-background baseline miou "))
    baseline = float(line.split()[3].rstrip(";"))
    best = float(history["val_miou"].iloc[0])
    assert f"best {best:.4f} is " in line
    clearly = best > baseline + 0.01
    assert ("is above it" in line) == clearly
    if not clearly:  # say why a run that has not learned the objects has not
        assert "optimiser steps from random weights (--weights none) are too few" in line

"""train/resize.py is what training and prediction do: the mask resize of build_transform, and (in numpy) the
bilinear resize of the predict path's probabilities."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from datatools_train.augment import build_transform  # noqa: E402
from datatools_train.resize import mask_to_model, probs_to_image, round_trip  # noqa: E402

pytestmark = pytest.mark.train


def test_mask_to_model_is_build_transforms_resize() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 255, (97, 131, 3), dtype=np.uint8)
    mask = rng.integers(0, 6, (97, 131)).astype(np.uint8)
    mask[:5] = 255
    planes = rng.integers(0, 2, (97, 131, 7)).astype(np.uint8)
    t = build_transform(64, train=False)
    assert np.array_equal(t(image=image, mask=mask)["mask"], mask_to_model(mask, 64))
    assert np.array_equal(t(image=image, mask=planes)["mask"], mask_to_model(planes, 64))


@pytest.mark.parametrize(("side", "shape"), [(64, (160, 160)), (128, (200, 150)), (96, (96, 96))])
def test_probs_to_image_is_the_predict_paths_interpolation(side: int, shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(side)
    probs = rng.random((5, side, side), dtype=np.float32)
    ours = probs_to_image(probs, shape)
    theirs = F.interpolate(torch.from_numpy(probs)[None], size=shape, mode="bilinear", align_corners=False)[0]
    np.testing.assert_allclose(ours, theirs.numpy(), atol=5e-5)  # OpenCV rounds its weights: ~1e-5
    # a perfect model's one-hot output: the decisions differ only where two classes tie (0.5 / 0.5 and the like)
    small = rng.integers(0, 4, (side, side))
    onehot = F.one_hot(torch.from_numpy(small), 4).permute(2, 0, 1).float()
    full = F.interpolate(onehot[None], size=shape, mode="bilinear", align_corners=False)[0].numpy()
    ours_mask, torch_mask = probs_to_image(onehot.numpy(), shape).argmax(0), full.argmax(0)
    ys, xs = np.nonzero(ours_mask != torch_mask)
    assert np.allclose(full[ours_mask[ys, xs], ys, xs], full[torch_mask[ys, xs], ys, xs], atol=1e-5)


def test_round_trip_at_the_native_size_is_the_identity() -> None:
    mask = np.random.default_rng(1).integers(0, 4, (128, 128)).astype(np.uint8)
    assert np.array_equal(round_trip(mask, 128, False), mask)

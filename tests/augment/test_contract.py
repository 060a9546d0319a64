"""The contract every op in OPS keeps: image and masks aligned, dtypes kept, same seed -> same output.

The synthetic samples encode object membership in the pixels: channel j of a pixel is bright exactly where object
j of that sample lies (objects overlap), so after any op the pixels under an output object's mask must still be
bright in that object's channel.
"""

from __future__ import annotations

from typing import Any

import albumentations as A
import numpy as np
import pytest

from datatools.augment import (
    OPS,
    AlbuConfig,
    CopyPasteConfig,
    FlipConfig,
    MosaicConfig,
    ObjectRecord,
    RicapConfig,
    RotateConfig,
    Sample,
)
from datatools.augment.types import empty_masks, params_to_json

H, W = 96, 128


def _pipeline() -> dict[str, Any]:
    return dict(A.to_dict(A.Compose([A.HorizontalFlip(p=0.5), A.Affine(rotate=(-20, 20), p=1.0),
                                     A.RandomBrightnessContrast(p=0.5)])))


#: op -> (config, plan choice, number of source samples, share of mask pixels that must be bright: 1.0 = exact)
CASES: dict[str, tuple[Any, dict[str, Any], int, float]] = {
    "mosaic": (MosaicConfig(min_area=1), {}, 4, 1.0),
    "ricap": (RicapConfig(min_area=1), {}, 4, 1.0),
    "copy-paste": (CopyPasteConfig(scale_range=(0.7, 1.3), angle_range=(-30, 30), min_area=1), {}, 3, 0.97),
    "flip": (FlipConfig(), {"direction": "hv"}, 1, 1.0),
    "rotate": (RotateConfig(angle_range=(-40, 40), min_area=1), {}, 1, 0.97),
    "albu": (AlbuConfig(_pipeline()), {}, 1, 0.97),
}


def test_every_op_has_a_contract_case() -> None:
    assert set(CASES) == set(OPS), "add a row to CASES for every op in OPS"


def _sample(seed: int, sample_id: int) -> Sample:
    """Up to three overlapping ellipses; channel j is 255 exactly on object j; background is mid-grey noise
    below 100 so that it never reads as bright."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 100, size=(H, W, 3), dtype=np.uint8)
    yy, xx = np.mgrid[:H, :W]
    masks = []
    for j in range(3):
        cy, cx = rng.uniform(0.3, 0.7) * H, rng.uniform(0.25, 0.75) * W
        ry, rx = rng.uniform(0.15, 0.3) * H, rng.uniform(0.12, 0.25) * W
        m = ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1
        masks.append(m)
        image[..., j][m] = 255
    objects = tuple(ObjectRecord(j + 1, 0, sample_id, sample_id * 10 + j) for j in range(3))
    return Sample(image, np.stack(masks), objects, sample_id)


@pytest.mark.parametrize("op", sorted(OPS))
def test_op_contract(op: str) -> None:
    config, choice, n, exact_share = CASES[op]
    samples = [_sample(100 + k, k) for k in range(n)]
    for s in samples:  # the fixture overlaps, as multilabel data does
        assert (s.masks[0] & s.masks[1]).any() or (s.masks[1] & s.masks[2]).any() or (s.masks[0] & s.masks[2]).any()
    out, params = OPS[op].run(samples, config, np.random.default_rng(7), choice)

    assert out.image.dtype == np.uint8 and out.image.ndim == 3 and out.image.shape[2] == 3
    assert out.masks.dtype == np.bool_ and out.masks.shape[1:] == out.image.shape[:2]
    assert len(out.objects) == len(out.masks) > 0
    # aligned: under each object's mask, its own channel is bright
    channel = {(o.source_image_id, o.source_annotation_id): int(o.source_annotation_id) % 10 for o in out.objects}
    for mask, obj in zip(out.masks, out.objects, strict=True):
        bright = out.image[..., channel[(obj.source_image_id, obj.source_annotation_id)]][mask] >= 128
        assert bright.mean() >= exact_share, (op, obj, bright.mean())
    # the same seed gives the same output; params are JSON-ready
    again, params_again = OPS[op].run(samples, config, np.random.default_rng(7), choice)
    assert np.array_equal(out.image, again.image) and np.array_equal(out.masks, again.masks)
    assert out.objects == again.objects and params_to_json(params) == params_to_json(params_again)
    # the kernel is pure: the inputs are untouched
    assert all(np.array_equal(s.masks, _sample(100 + k, k).masks) and np.array_equal(s.image, _sample(100 + k, k).image)
               for k, s in enumerate(samples))


@pytest.mark.parametrize("op", ["mosaic", "ricap", "copy-paste", "rotate", "albu"])
def test_a_different_seed_gives_a_different_output(op: str) -> None:
    config, choice, n, _ = CASES[op]
    samples = [_sample(100 + k, k) for k in range(n)]
    a, _ = OPS[op].run(samples, config, np.random.default_rng(1), choice)
    b, _ = OPS[op].run(samples, config, np.random.default_rng(2), choice)
    assert a.image.shape != b.image.shape or not np.array_equal(a.image, b.image)


@pytest.mark.parametrize(
    ("image", "masks", "objects", "message"),
    [
        (np.zeros((4, 5), np.uint8), np.zeros((0, 4, 5), bool), (), r"\(H, W, 3\) uint8"),
        (np.zeros((4, 5, 3), np.float32), np.zeros((0, 4, 5), bool), (), r"\(H, W, 3\) uint8"),
        (np.zeros((4, 5, 3), np.uint8), np.zeros((1, 4, 5), np.uint8), (ObjectRecord(1),), r"\(N, H, W\) bool"),
        (np.zeros((4, 5, 3), np.uint8), np.zeros((1, 5, 4), bool), (ObjectRecord(1),), r"\(N, 4, 5\)"),
        (np.zeros((4, 5, 3), np.uint8), np.zeros((2, 4, 5), bool), (ObjectRecord(1),), "2 masks but 1 object"),
    ],
)
def test_a_malformed_sample_cannot_exist(image: Any, masks: Any, objects: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Sample(image, masks, objects)


@pytest.mark.parametrize("op", [op for op in sorted(OPS) if OPS[op].windows is not None])
def test_windowed_ops_need_only_the_sizes_and_the_windows(op: str) -> None:
    """The runner draws these ops' parameters from image-only samples and rasterises only objects meeting a
    window; that must give exactly the output of the full samples."""
    config, choice, n, _ = CASES[op]
    samples = [_sample(100 + k, k) for k in range(n)]
    full, full_params = OPS[op].run(samples, config, np.random.default_rng(7), choice)
    heads = [Sample(s.image, empty_masks(0, *s.size_hw), (), s.image_id) for s in samples]
    params = OPS[op].sample_params(np.random.default_rng(7), heads, config, choice)
    assert params == full_params
    windows = OPS[op].windows(params)  # type: ignore[misc]
    trimmed = []
    for s, (y0, x0, y1, x1) in zip(samples, windows, strict=True):
        meets = [b is not None and b[0] < y1 and y0 < b[2] and b[1] < x1 and x0 < b[3] for b in s.boxes_yxyx]
        trimmed.append(s.keep(meets))
    assert sum(len(t.objects) for t in trimmed) < sum(len(s.objects) for s in samples), "some objects are skipped"
    out = OPS[op].apply(trimmed, params)
    assert np.array_equal(out.image, full.image) and np.array_equal(out.masks, full.masks)
    assert out.objects == full.objects

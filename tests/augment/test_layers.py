"""Layers of objects whose boxes do not meet: encoding a layer at once gives, object by object, the same RLE strings
as pycocotools on each object alone; objects are read back as pycocotools decodes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from datatools.augment._layers import disjoint_layers
from datatools.augment._load import clear_crops, load_sample
from datatools.augment._records import masks_to_fields
from datatools.augment.types import empty_masks, mask_box_yxyx
from datatools.core.dataset import Dataset
from datatools.core.masks import annotation_to_rle

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"


def _meet(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


@pytest.mark.parametrize("seed", range(5))
def test_layers_hold_every_box_once_and_no_two_meet(seed: int) -> None:
    rng = np.random.default_rng(seed)
    boxes: list[tuple[int, int, int, int] | None] = []
    for _ in range(60):
        if rng.random() < 0.1:
            boxes.append(None)
            continue
        y0, x0 = (int(v) for v in rng.integers(0, 90, 2))
        boxes.append((y0, x0, y0 + int(rng.integers(1, 30)), x0 + int(rng.integers(1, 30))))
    layers = disjoint_layers(boxes)
    placed = sorted(i for layer in layers for i in layer)
    assert placed == [i for i, b in enumerate(boxes) if b is not None]
    for layer in layers:
        for a in layer:
            for b in layer:
                assert a == b or not _meet(boxes[a], boxes[b])  # type: ignore[arg-type]


def _random_masks(rng: np.random.Generator, n: int, h: int, w: int) -> np.ndarray:
    masks = empty_masks(n, h, w)
    for i in range(n):
        y0, x0 = int(rng.integers(0, h - 4)), int(rng.integers(0, w - 4))
        y1, x1 = y0 + int(rng.integers(1, 25)), x0 + int(rng.integers(1, 25))
        masks[i, y0:y1, x0:x1] = rng.random((min(y1, h) - y0, min(x1, w) - x0)) < 0.7
    return masks


@pytest.mark.parametrize("seed", range(4))
def test_encoding_in_layers_gives_the_strings_of_one_encode_per_object(seed: int) -> None:
    rng = np.random.default_rng(seed)
    masks = _random_masks(rng, 30, 60, 70)  # many overlapping boxes, a few empty planes
    masks[3] = False
    boxes = [mask_box_yxyx(m) for m in masks]
    layered, _ = masks_to_fields(masks, boxes_yxyx=boxes)
    for mask, fields in zip(masks, layered, strict=True):
        ref = mask_utils.encode(np.asfortranarray(mask[..., None].astype(np.uint8)))[0]
        assert fields["segmentation"]["counts"] == ref["counts"].decode("ascii")
        assert fields["area"] == float(mask.sum())
    loose = [None if b is None else (max(0, b[0] - 2), max(0, b[1] - 2), b[2] + 2, b[3] + 2) for b in boxes]
    assert masks_to_fields(masks, boxes_yxyx=loose)[0] == layered  # boxes that hold the masks are enough


def test_loaded_objects_equal_each_annotation_decoded_alone() -> None:
    ds = Dataset.load(EXAMPLE / "_annotations.coco.json", EXAMPLE)
    busy = sorted(ds.images, key=lambda img: -len(ds.annotations_of(img["id"])))[:5]  # the 87-object image first
    clear_crops()
    for img in busy:
        sample = load_sample(ds, img["id"])
        anns = ds.annotations_of(img["id"])
        assert len(sample.objects) == len(anns)
        for plane, ann in zip(sample.masks, anns, strict=True):
            alone = mask_utils.decode(annotation_to_rle(ann["segmentation"], img["height"], img["width"]))
            np.testing.assert_array_equal(plane, alone.astype(bool))
    clear_crops()

"""Per-image label vectors against plain loops over the records and pycocotools."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from datatools.core.dataset import Dataset
from datatools.core.masks import rasterize_semantic
from datatools.folds.labels import ImageLabels, PixelSource, Stratify, image_labels

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"


@pytest.fixture(scope="module")
def example() -> Dataset:
    return Dataset.load(EXAMPLE / "_annotations.coco.json", EXAMPLE, check_files=False)


def test_presence_instances_and_areas_match_a_loop(example: Dataset) -> None:
    labels = image_labels(example)
    cat_index = {c["id"]: i for i, c in enumerate(example.categories)}
    for row, img in enumerate(example.images):
        counts = np.zeros(len(cat_index), dtype=np.int64)
        areas = np.zeros(len(cat_index))
        for ann in example.annotations:
            if ann["image_id"] == img["id"]:
                counts[cat_index[ann["category_id"]]] += 1
                areas[cat_index[ann["category_id"]]] += ann["area"]
        assert labels.instances[row].tolist() == counts.tolist()
        assert labels.presence[row].tolist() == (counts > 0).tolist()
        np.testing.assert_allclose(labels.pixels[row], areas)
    assert labels.class_names == tuple(c["name"] for c in example.categories)
    assert labels.category_ids == tuple(c["id"] for c in example.categories)
    assert labels.image_ids == tuple(i["id"] for i in example.images)
    assert labels.instances.sum() == len(example.annotations)


def test_masks_are_the_rasteriser_pixel_counts(example: Dataset) -> None:
    labels = image_labels(example, PixelSource.MASKS, workers=2)
    cm = example.class_map()
    for row, img in enumerate(example.images[:12]):
        mask = rasterize_semantic(example.annotations_of(img["id"]), img["height"], img["width"], cm)
        assert labels.pixels[row].tolist() == [float((mask == v).sum()) for v in range(1, len(cm) + 1)]
    # with overlaps resolved, no image has more class pixels than pixels, and a lone polygon has its pycocotools area
    assert (labels.pixels.sum(axis=1) <= [i["height"] * i["width"] for i in example.images]).all()
    lone = next(i for i in example.images if len(example.annotations_of(i["id"])) == 1)
    ann = example.annotations_of(lone["id"])[0]
    rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], lone["height"], lone["width"]))
    row = labels.image_ids.index(lone["id"])
    assert labels.pixels[row].sum() == float(mask_utils.area(rle))


def test_missing_area_is_computed(example: Dataset) -> None:
    coco = copy.deepcopy(example.coco)
    ann = coco["annotations"][0]
    del ann["area"]
    labels = image_labels(Dataset(coco, EXAMPLE))
    img = next(i for i in coco["images"] if i["id"] == ann["image_id"])
    rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], img["height"], img["width"]))
    row = [i["id"] for i in coco["images"]].index(img["id"])
    col = [c["id"] for c in coco["categories"]].index(ann["category_id"])
    others = sum(a["area"] for a in coco["annotations"][1:]
                 if a["image_id"] == img["id"] and a["category_id"] == ann["category_id"])
    assert labels.pixels[row, col] == pytest.approx(float(mask_utils.area(rle)) + others)


def test_weights_and_shape_checks(example: Dataset) -> None:
    labels = image_labels(example)
    assert labels.weights("presence").tolist() == labels.presence.astype(float).tolist()
    assert labels.weights(Stratify.INSTANCES).sum() == len(example.annotations)
    assert labels.weights("pixels") is labels.pixels
    with pytest.raises(ValueError, match="presence must have shape"):
        ImageLabels((1, 2), np.zeros((1, 1), bool), np.zeros((2, 1), np.int64), np.zeros((2, 1)), ("a",), (1,))


def test_image_ids_need_not_be_positions(tmp_path: Path) -> None:
    coco = json.loads((EXAMPLE / "_annotations.coco.json").read_text())
    remap = {img["id"]: 1000 - 7 * n for n, img in enumerate(coco["images"])}
    for img in coco["images"]:
        img["id"] = remap[img["id"]]
    for ann in coco["annotations"]:
        ann["image_id"] = remap[ann["image_id"]]
    a = image_labels(Dataset(coco, EXAMPLE))
    b = image_labels(Dataset.load(EXAMPLE / "_annotations.coco.json", EXAMPLE, check_files=False))
    assert np.array_equal(a.instances, b.instances)

"""The rasteriser against pycocotools ``annToMask`` painted by a plain loop, pixel for pixel."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.errors import InvalidDatasetError
from datatools.core.masks import (
    OverlapPolicy,
    annotation_to_rle,
    mask_to_rle,
    rasterize_multilabel,
    rasterize_semantic,
    rle_to_mask,
)

SHARED = Path(__file__).parents[2] / ".." / "shared" / "data"


def reference_semantic(coco: COCO, img: dict, cm: ClassMap, policy: str) -> np.ndarray:
    """The loop competition notebooks write: annToMask every annotation, order, paint."""
    anns = coco.imgToAnns[img["id"]]
    masks = [coco.annToMask(a) for a in anns]
    idx = list(range(len(anns)))
    if policy == "smaller-on-top":
        idx.sort(key=lambda i: -int(masks[i].sum()))
    elif policy == "max-id":
        idx.sort(key=lambda i: anns[i]["category_id"])
    out = np.zeros((img["height"], img["width"]), np.uint8)
    for i in idx:
        out[masks[i] > 0] = cm.value_of(anns[i]["category_id"])
    return out


def _load(ann_file: Path) -> tuple[COCO, dict, ClassMap]:
    coco = COCO(str(ann_file))
    raw = json.loads(ann_file.read_text())
    return coco, raw, ClassMap.from_categories(raw["categories"])


@pytest.mark.shared_data
@pytest.mark.parametrize("split", ["train", "valid", "test"])
@pytest.mark.parametrize("policy", ["smaller-on-top", "order", "max-id"])
def test_equals_pycocotools_on_medical_waste(split: str, policy: str) -> None:
    ann_file = SHARED / "medical_waste" / split / "_annotations.coco.json"
    if not ann_file.is_file():
        pytest.skip("../shared/data not present")
    coco, raw, cm = _load(ann_file)
    differing = []
    shared_pixels = 0
    for img in raw["images"]:
        anns = coco.imgToAnns[img["id"]]
        ours = rasterize_semantic(anns, img["height"], img["width"], cm, policy)
        ref = reference_semantic(coco, img, cm, policy)
        if not np.array_equal(ours, ref):
            differing.append(img["file_name"])
        if len(anns) > 1:
            claims = sum(coco.annToMask(a).astype(np.int32) for a in anns)
            shared_pixels += int((claims > 1).sum())
    assert differing == []
    assert len(raw["images"]) > 20
    if split == "train":
        assert shared_pixels > 0  # overlapping polygons exist, so the policy matters here


RLE_FILES = [
    "coco_dataset/coco_instances/annotations/instances_val.json",
    "coco_dataset/coco_stuff/annotations/stuff_train.json",
    "coco_dataset/coco_stuff/annotations/stuff_val.json",
    "coco_dataset/coco_person_keypoints/annotations/person_keypoints_val.json",
    "coco_dataset/coco_roboflow/val/_annotations.coco.json",
    "coco_dataset/mmdet_coco/annotations/instances_val.json",
]


@pytest.mark.shared_data
@pytest.mark.parametrize("rel", RLE_FILES)
@pytest.mark.parametrize("policy", ["smaller-on-top", "order"])
def test_equals_pycocotools_on_rle_edge_cases(rel: str, policy: str) -> None:
    ann_file = SHARED / "coco_edge_cases" / rel
    if not ann_file.is_file():
        pytest.skip("../shared/data not present")
    coco, raw, cm = _load(ann_file)
    rles = [a for a in raw["annotations"] if isinstance(a.get("segmentation"), dict)]
    assert rles, "the file holds RLE annotations"
    for img in raw["images"]:
        anns = coco.imgToAnns[img["id"]]
        ours = rasterize_semantic(anns, img["height"], img["width"], cm, policy)
        assert np.array_equal(ours, reference_semantic(coco, img, cm, policy)), img["file_name"]
        assert ours.any()


def _poly(x0: float, y0: float, x1: float, y1: float) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


CATS = [{"id": 0, "name": "zero"}, {"id": 5, "name": "big"}, {"id": 2, "name": "small"}]


def _anns() -> list[dict]:
    # "big" (id 5) covers most of the image and comes last; "small" (id 2) sits inside it; "zero" overlaps both.
    return [
        {"id": 1, "category_id": 2, "segmentation": _poly(4, 4, 10, 10)},
        {"id": 2, "category_id": 0, "segmentation": _poly(8, 8, 14, 14)},
        {"id": 3, "category_id": 5, "segmentation": _poly(0, 0, 20, 20)},
    ]


def test_category_id_zero_and_value_mapping() -> None:
    cm = ClassMap.from_categories(CATS)
    assert [cm.value_of(c["id"]) for c in CATS] == [1, 2, 3]
    m = rasterize_semantic(_anns(), 24, 24, cm, "order")
    assert set(np.unique(m)) == {0, 2}  # "big" painted last covers the others; background stays 0
    assert m[22, 22] == 0 and m[5, 5] == 2


def test_smaller_on_top_uses_true_area_not_area_field() -> None:
    cm = ClassMap.from_categories(CATS)
    anns = _anns()
    anns[0]["area"] = 10_000  # a box-area exporter bug must not change the order
    m = rasterize_semantic(anns, 24, 24, cm, "smaller-on-top")
    assert m[5, 5] == cm.value_of(2)  # small on top of big
    assert m[12, 12] == cm.value_of(0)
    assert m[18, 18] == cm.value_of(5)


def test_class_priority_and_max_id() -> None:
    cm = ClassMap.from_categories(CATS)
    m = rasterize_semantic(_anns(), 24, 24, cm, "class-priority:big")
    assert m[5, 5] == cm.value_of(5) and m[12, 12] == cm.value_of(5)
    m = rasterize_semantic(_anns(), 24, 24, cm, "class-priority:zero,small")
    assert m[9, 9] == cm.value_of(0)  # zero listed first beats small
    assert m[5, 5] == cm.value_of(2)  # small beats the unlisted big
    m = rasterize_semantic(_anns(), 24, 24, cm, "max-id")
    assert np.all(m[:20, :20] == cm.value_of(5))
    with pytest.raises(InvalidDatasetError, match="nope"):
        rasterize_semantic(_anns(), 24, 24, cm, "class-priority:nope")


def test_conflict_ignore_against_brute_force() -> None:
    cm = ClassMap.from_categories(CATS)
    anns = _anns() + [{"id": 4, "category_id": 2, "segmentation": _poly(2, 2, 6, 6)}]  # same class overlaps
    m = rasterize_semantic(anns, 24, 24, cm, "conflict-ignore")
    masks = [rle_to_mask(annotation_to_rle(a["segmentation"], 24, 24)) for a in anns]
    for y in range(24):
        for x in range(24):
            claim = {cm.value_of(a["category_id"]) for a, mk in zip(anns, masks, strict=True) if mk[y, x]}
            expected = 0 if not claim else (claim.pop() if len(claim) == 1 else IGNORE_INDEX)
            assert m[y, x] == expected, (y, x)
    assert (m == IGNORE_INDEX).any()


def test_crowd_and_ignore_regions() -> None:
    cm = ClassMap.from_categories(CATS)
    anns = _anns()
    anns[0]["iscrowd"] = 1
    as_class = rasterize_semantic(anns, 24, 24, cm, crowd="class")
    as_ignore = rasterize_semantic(anns, 24, 24, cm, crowd="ignore")
    crowd = rle_to_mask(annotation_to_rle(anns[0]["segmentation"], 24, 24))
    assert np.all(as_ignore[crowd] == IGNORE_INDEX)
    assert np.array_equal(as_ignore[~crowd], as_class[~crowd])
    region = np.zeros((24, 24), bool)
    region[20:, 20:] = True
    with_ignore = rasterize_semantic(anns, 24, 24, cm, ignore=[mask_to_rle(region)])
    assert np.all(with_ignore[region] == IGNORE_INDEX) and np.array_equal(with_ignore[~region], as_class[~region])


def test_duplicate_names_stay_distinct_and_multilabel_keeps_overlaps() -> None:
    cats = [{"id": 1, "name": "bone"}, {"id": 2, "name": "bone"}]
    cm = ClassMap.from_categories(cats)
    anns = [{"id": 1, "category_id": 1, "segmentation": _poly(0, 0, 10, 10)},
            {"id": 2, "category_id": 2, "segmentation": _poly(5, 5, 15, 15)}]
    semantic = rasterize_semantic(anns, 16, 16, cm, "order")
    assert set(np.unique(semantic)) == {0, 1, 2}
    planes = rasterize_multilabel(anns, 16, 16, cm)
    assert planes.shape == (2, 16, 16) and planes.dtype == bool
    for k, ann in enumerate(anns):
        assert np.array_equal(planes[k], rle_to_mask(annotation_to_rle(ann["segmentation"], 16, 16)))
    assert (planes[0] & planes[1]).sum() > 0


def test_multipart_polygon_equals_union_of_parts() -> None:
    cm = ClassMap.from_categories([{"id": 1, "name": "a"}])
    parts = _poly(1, 1, 5, 5) + _poly(10, 10, 14, 14)
    m = rasterize_semantic([{"id": 1, "category_id": 1, "segmentation": parts}], 16, 16, cm)
    union = np.zeros((16, 16), bool)
    for part in parts:
        union |= rle_to_mask(annotation_to_rle([part], 16, 16))
    assert np.array_equal(m == 1, union) and union[2, 2] and union[12, 12] and not union[7, 7]


def test_rle_size_mismatch_is_refused() -> None:
    cm = ClassMap.from_categories([{"id": 1, "name": "a"}])
    rle = mask_to_rle(np.ones((4, 4), bool))
    with pytest.raises(InvalidDatasetError, match="RLE size"):
        rasterize_semantic([{"id": 9, "category_id": 1, "segmentation": rle}], 8, 8, cm)


@pytest.mark.parametrize("shape", [(1, 1), (7, 13), (64, 48), (480, 640)])
def test_rle_round_trips_are_exact(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(sum(shape))
    for density in (0.0, 0.02, 0.5, 1.0):
        mask = rng.random(shape) < density
        rle = mask_to_rle(mask)
        assert isinstance(rle["counts"], str)
        json.dumps(rle)  # JSON-ready
        assert np.array_equal(rle_to_mask(rle), mask)
        assert int(mask_utils.area(rle)) == int(mask.sum())
        # uncompressed counts (column-major runs, starting with zeros) give the same mask
        flat = mask.flatten(order="F").astype(np.int8)
        changes = np.flatnonzero(np.diff(np.concatenate([[0], flat, [1 - flat[-1]]])))
        counts = np.diff(np.concatenate([[0], changes])).tolist()
        uncompressed = {"size": list(shape), "counts": counts}
        assert np.array_equal(rle_to_mask(annotation_to_rle(uncompressed, *shape)), mask)


def test_overlap_policy_parsing() -> None:
    assert str(OverlapPolicy.parse("class-priority: a , b")) == "class-priority:a,b"
    assert str(OverlapPolicy.parse("order")) == "order"
    with pytest.raises(ValueError, match="smaller-on-top"):
        OverlapPolicy.parse("biggest")
    with pytest.raises(ValueError):
        OverlapPolicy.parse("class-priority")

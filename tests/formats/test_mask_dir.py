"""COCO -> mask folder -> COCO round trips, layout, determinism."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.masks import mask_to_rle, rasterize_multilabel, rasterize_semantic
from datatools.formats.mask_dir import coco_to_mask_dir, mask_dir_to_coco
from datatools.formats.multilabel_npz import read_multilabel

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"


def _example() -> Dataset:
    return Dataset.load(EXAMPLE / "_annotations.coco.json", EXAMPLE)


def _tree_digest(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_layout_values_and_round_trip(tmp_path: Path) -> None:
    ds = _example()
    out = coco_to_mask_dir(ds, tmp_path / "m", workers=2, progress=False).out
    classes = json.loads((out / "classes.json").read_text())
    assert classes[0] == {"value": 0, "category_id": None, "name": "background", "color": [0, 0, 0]}
    assert [c["category_id"] for c in classes[1:]] == [c["id"] for c in ds.categories]
    assert [c["value"] for c in classes] == list(range(len(ds.categories) + 1))
    cm = ClassMap.load(out / "classes.json")
    painted = 0
    for img in ds.images:
        stem = Path(img["file_name"]).stem
        with Image.open(out / "ann_dir" / f"{stem}.png") as im:
            assert im.mode == "P"  # single channel with a palette
            mask = np.asarray(im)
        expected = rasterize_semantic(ds.annotations_of(img["id"]), img["height"], img["width"], ds.class_map())
        assert np.array_equal(mask, expected)
        painted += int(mask.any())
        src = ds.image_path(img).read_bytes()
        assert (out / "img_dir" / img["file_name"]).read_bytes() == src
    assert painted > 0
    back = mask_dir_to_coco(out / "ann_dir", out / "img_dir", cm)
    back_ds = Dataset(back, out / "img_dir")
    for img in back["images"]:
        with Image.open(out / "ann_dir" / (Path(img["file_name"]).stem + ".png")) as im:
            original = np.asarray(im)
        again = rasterize_semantic(back_ds.annotations_of(img["id"]), img["height"], img["width"], cm)
        assert np.array_equal(again, original)


def test_same_input_gives_identical_bytes_whatever_the_workers(tmp_path: Path) -> None:
    ds = _example()
    a = coco_to_mask_dir(ds, tmp_path / "a", workers=1, progress=False).out
    b = coco_to_mask_dir(ds, tmp_path / "b", workers=2, progress=False).out
    assert _tree_digest(a) == _tree_digest(b)
    assert len(_tree_digest(a)) == 2 * len(ds.images) + 1


def test_multilabel_planes_keep_overlaps(tmp_path: Path) -> None:
    ds = _example()
    out = coco_to_mask_dir(ds, tmp_path / "ml", multilabel=True, copy_images=False, progress=False).out
    assert not (out / "img_dir").exists()
    overlaps = 0
    for img in ds.images:
        planes = read_multilabel(out / "ann_dir" / (Path(img["file_name"]).stem + ".npz"))
        expected = rasterize_multilabel(ds.annotations_of(img["id"]), img["height"], img["width"], ds.class_map())
        assert planes.dtype == bool and np.array_equal(planes, expected)
        overlaps += int((planes.sum(0) > 1).sum())
    back = mask_dir_to_coco(out / "ann_dir", EXAMPLE, ClassMap.load(out / "classes.json"))
    assert {a["category_id"] for a in back["annotations"]} <= {c["id"] for c in ds.categories}


def test_ignore_pixels_round_trip(tmp_path: Path) -> None:
    images = tmp_path / "img"
    images.mkdir()
    cv2.imwrite(str(images / "x.png"), np.zeros((10, 12, 3), np.uint8))
    region = np.zeros((10, 12), bool)
    region[6:, :4] = True
    coco = {"images": [{"id": 5, "file_name": "x.png", "width": 12, "height": 10,
                        "datatools": {"ignore": [mask_to_rle(region)]}}],
            "categories": [{"id": 1, "name": "a"}],
            "annotations": [{"id": 1, "image_id": 5, "category_id": 1, "segmentation": [[0, 0, 8, 0, 8, 5, 0, 5]]}]}
    (tmp_path / "a.json").write_text(json.dumps(coco))
    ds = Dataset.load(tmp_path / "a.json", images)
    out = coco_to_mask_dir(ds, tmp_path / "m", progress=False, workers=1).out
    mask = np.asarray(Image.open(out / "ann_dir" / "x.png"))
    assert np.all(mask[region] == IGNORE_INDEX) and (mask == 1).sum() > 0
    back = mask_dir_to_coco(out / "ann_dir", out / "img_dir", ClassMap.load(out / "classes.json"))
    assert back["images"][0]["datatools"]["ignore"] == [mask_to_rle(region)]


def test_stem_collision_is_refused_before_writing(tmp_path: Path) -> None:
    images = tmp_path / "img"
    images.mkdir()
    for name in ("x.png", "x.jpg"):
        cv2.imwrite(str(images / name), np.zeros((4, 4, 3), np.uint8))
    coco = {"images": [{"id": i, "file_name": n, "width": 4, "height": 4} for i, n in enumerate(["x.png", "x.jpg"])],
            "categories": [{"id": 1, "name": "a"}], "annotations": []}
    (tmp_path / "a.json").write_text(json.dumps(coco))
    with pytest.raises(InvalidDatasetError, match="would both write"):
        coco_to_mask_dir(Dataset.load(tmp_path / "a.json", images), tmp_path / "m", progress=False)
    assert not (tmp_path / "m").exists()


def test_unknown_mask_value_is_refused(tmp_path: Path) -> None:
    (tmp_path / "ann").mkdir()
    (tmp_path / "img").mkdir()
    cv2.imwrite(str(tmp_path / "img" / "x.png"), np.zeros((4, 4, 3), np.uint8))
    Image.fromarray(np.full((4, 4), 9, np.uint8), mode="L").save(tmp_path / "ann" / "x.png")
    cm = ClassMap.from_categories([{"id": 1, "name": "a"}])
    with pytest.raises(InvalidDatasetError, match=r"values \[9\]"):
        mask_dir_to_coco(tmp_path / "ann", tmp_path / "img", cm)

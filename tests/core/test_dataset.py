"""Dataset core: arbitrary ids, fields preserved, reindex, subset, atomic folders."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from datatools.core.atomic import atomic_write_json, output_dir
from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError, InvalidDatasetError, OutputExistsError
from datatools.core.masks import rasterize_semantic


def _tiny(root: Path) -> tuple[Path, Path]:
    images = root / "imgs"
    (images / "sub").mkdir(parents=True)
    for name in ("a.png", "sub/b.png"):
        cv2.imwrite(str(images / name), np.full((12, 16, 3), 90, np.uint8))
    coco = {
        "info": {"note": "kept"},
        "custom_top": [1, 2],
        "categories": [{"id": 40, "name": "x", "color": "red"}, {"id": 0, "name": "zero"}],
        "images": [
            {"id": 1000, "file_name": "a.png", "width": 16, "height": 12, "site": "A"},
            {"id": 7, "file_name": "sub/b.png", "width": 16, "height": 12},
        ],
        "annotations": [
            {"id": 55, "image_id": 7, "category_id": 0, "segmentation": [[1, 1, 8, 1, 8, 8]], "iscrowd": 0,
             "attributes": {"occluded": True}},
            {"id": 3, "image_id": 1000, "category_id": 40, "segmentation": [[2, 2, 12, 2, 12, 10, 2, 10]]},
            {"id": 9, "image_id": 1000, "category_id": 0, "segmentation": [[0, 0, 5, 0, 5, 5]]},
        ],
    }
    ann = root / "ann.json"
    ann.write_text(json.dumps(coco))
    return ann, images


def test_arbitrary_ids_and_annotations_of(tmp_path: Path) -> None:
    ds = Dataset.load(*_tiny(tmp_path))
    assert [a["id"] for a in ds.annotations_of(1000)] == [3, 9]
    assert [a["id"] for a in ds.annotations_of(7)] == [55]
    assert ds.annotations_of(123) == []
    assert ds.class_map().value_of(0) == 2 and ds.class_map().value_of(40) == 1
    assert ds.image_path(ds.images[1]) == tmp_path / "imgs" / "sub" / "b.png"


def test_save_keeps_every_field_and_copies_images(tmp_path: Path) -> None:
    ann, images = _tiny(tmp_path)
    ds = Dataset.load(ann, images)
    out = ds.save(tmp_path / "out")
    written = json.loads((out / "annotations.json").read_text())
    assert written == json.loads(ann.read_text())
    assert (out / "images" / "sub" / "b.png").read_bytes() == (images / "sub" / "b.png").read_bytes()
    again = Dataset.from_dir(out)
    assert again.coco == ds.coco


def test_reindex_renumbers_and_keeps_the_pixels(tmp_path: Path) -> None:
    ds = Dataset.load(*_tiny(tmp_path))
    re = ds.reindexed()
    assert [r["id"] for r in re.images] == [1, 2]
    assert [r["id"] for r in re.categories] == [1, 2]
    assert [r["id"] for r in re.annotations] == [1, 2, 3]
    assert ds.images[0]["id"] == 1000  # the source is not modified
    for old, new in zip(ds.images, re.images, strict=True):
        m_old = rasterize_semantic(ds.annotations_of(old["id"]), 12, 16, ds.class_map())
        m_new = rasterize_semantic(re.annotations_of(new["id"]), 12, 16, re.class_map())
        assert np.array_equal(m_old, m_new) and m_old.any()
    assert re.annotations[0]["attributes"] == {"occluded": True}


def test_subset_keeps_categories_and_only_its_annotations(tmp_path: Path) -> None:
    ds = Dataset.load(*_tiny(tmp_path))
    sub = ds.subset([7])
    assert [r["id"] for r in sub.images] == [7]
    assert [r["id"] for r in sub.annotations] == [55]
    assert sub.categories == ds.categories and sub.coco["custom_top"] == [1, 2]


def test_open_convention(tmp_path: Path) -> None:
    ann, images = _tiny(tmp_path)
    with pytest.raises(DatatoolsError, match="either --data"):
        Dataset.open(ann, images, data=tmp_path)
    with pytest.raises(DatatoolsError, match="--ann and --images"):
        Dataset.open(ann=ann)
    with pytest.raises(InvalidDatasetError, match="not a datatools dataset folder"):
        Dataset.open(data=tmp_path)


def test_output_dir_is_all_or_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out"
    with pytest.raises(RuntimeError), output_dir(out) as tmp:
        (tmp / "half.json").write_text("{")
        raise RuntimeError("interrupted")
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []  # no staging folder left behind
    with output_dir(out) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(OutputExistsError, match="--overwrite"), output_dir(out):
        pass
    assert (out / "a.txt").read_text() == "1"
    with pytest.raises(RuntimeError), output_dir(out, overwrite=True) as tmp:
        raise RuntimeError("interrupted")
    assert (out / "a.txt").read_text() == "1"  # a failed overwrite keeps the old output
    with output_dir(out, overwrite=True) as tmp:
        (tmp / "b.txt").write_text("2")
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]


def test_atomic_json_is_deterministic(tmp_path: Path) -> None:
    obj = {"b": [1, 2.5, "é"], "a": None}
    atomic_write_json(tmp_path / "x.json", obj)
    atomic_write_json(tmp_path / "y.json", obj)
    assert (tmp_path / "x.json").read_bytes() == (tmp_path / "y.json").read_bytes()
    assert json.loads((tmp_path / "x.json").read_text()) == obj
    with pytest.raises(ValueError):
        atomic_write_json(tmp_path / "nan.json", {"v": float("nan")})
    assert not (tmp_path / "nan.json").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.json", "y.json"]

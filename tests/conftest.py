"""Shared fixtures: a tiny valid COCO dataset on disk, and the real data under ``../shared/data``."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

#: (width, height) of every fixture image.
IMAGE_WH = (32, 24)

Mutate = Callable[[dict[str, Any], Path], None]
MakeCoco = Callable[..., tuple[Path, Path, dict[str, Any]]]


def tiny_coco() -> dict[str, Any]:
    """A valid COCO dict: 2 images (32x24), categories 3 and 7, 3 polygons, extra top-level and per-record
    keys."""
    w, h = IMAGE_WH
    return {
        "info": {"description": "datatools test fixture"},
        "licenses": [],
        "extra_top_level": {"kept": True},
        "images": [
            {"id": 10, "file_name": "a.png", "width": w, "height": h, "extra": "img-a"},
            {"id": 20, "file_name": "sub/b.png", "width": w, "height": h},
        ],
        "categories": [
            {"id": 3, "name": "cat", "supercategory": "animal"},
            {"id": 7, "name": "dog", "supercategory": "animal"},
        ],
        "annotations": [
            {"id": 100, "image_id": 10, "category_id": 3, "iscrowd": 0, "area": 64.0, "bbox": [2, 2, 8, 8],
             "segmentation": [[2, 2, 10, 2, 10, 10, 2, 10]], "extra": {"note": "kept"}},
            {"id": 101, "image_id": 10, "category_id": 7, "iscrowd": 0, "area": 50.0, "bbox": [15, 5, 10, 10],
             "segmentation": [[15, 5, 25, 5, 20, 15]]},
            {"id": 102, "image_id": 20, "category_id": 7, "iscrowd": 0, "area": 100.0, "bbox": [4, 4, 10, 10],
             "segmentation": [[4, 4, 14, 4, 14, 14, 4, 14]]},
        ],
    }


@pytest.fixture
def make_coco(tmp_path: Path) -> MakeCoco:
    """Factory writing the tiny dataset of :func:`tiny_coco` into a folder.

    Call as ``make_coco(folder=None, mutate=None)``; ``mutate(coco, images_dir)`` runs after the images are
    written and before the json is, so a test can break one record or one file. Returns
    ``(ann_path, images_dir, coco)`` with ``ann_path = folder / "annotations.json"`` and
    ``images_dir = folder / "images"``.
    """

    def make(folder: Path | None = None, mutate: Mutate | None = None) -> tuple[Path, Path, dict[str, Any]]:
        folder = Path(folder) if folder is not None else tmp_path / "dataset"
        images_dir = folder / "images"
        coco = tiny_coco()
        rng = np.random.default_rng(0)
        for img in coco["images"]:
            path = images_dir / img["file_name"]
            path.parent.mkdir(parents=True, exist_ok=True)
            pixels = rng.integers(0, 256, size=(img["height"], img["width"], 3), dtype=np.uint8)
            assert cv2.imwrite(str(path), pixels)
        if mutate is not None:
            mutate(coco, images_dir)
        ann_path = folder / "annotations.json"
        ann_path.write_text(json.dumps(coco), encoding="utf-8")  # NaN is written as the non-standard `NaN`
        return ann_path, images_dir, coco

    return make


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` next to the repository; the test is skipped when it is absent."""
    path = (Path(__file__).parents[1] / ".." / "shared" / "data").resolve()
    if not path.is_dir():
        pytest.skip("../shared/data not present")
    return path

"""Hand-made datasets for the clean tests: smooth random photos (so perceptual hashes mean something) and
polygons placed by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

CATEGORIES = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}]


def smooth_image(rng: np.random.Generator, hw: tuple[int, int] = (64, 64), level: float = 128.0
                 ) -> npt.NDArray[np.uint8]:
    """A smooth random RGB image around ``level`` (upsampled 6x6 noise)."""
    small = rng.normal(level, 40.0, size=(6, 6, 3)).clip(0, 255).astype(np.float32)
    big = cv2.resize(small, (hw[1], hw[0]), interpolation=cv2.INTER_CUBIC)
    return np.asarray(big.clip(0, 255), dtype=np.uint8)


def square(x: float, y: float, side: float) -> list[list[float]]:
    return [[x, y, x + side, y, x + side, y + side, x, y + side]]


def write_image(path: Path, rgb: npt.NDArray[np.uint8], quality: int = 95) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    params = [cv2.IMWRITE_JPEG_QUALITY, quality] if path.suffix == ".jpg" else []
    assert cv2.imwrite(str(path), bgr, params)


def write_dataset(folder: Path, images: list[tuple[str, npt.NDArray[np.uint8]]],
                  annotations: list[dict[str, Any]], categories: list[dict[str, Any]] | None = None
                  ) -> tuple[Path, Path, dict[str, Any]]:
    """Write images (ids 1..N in order) and a COCO file; annotation ids are given by the caller."""
    root = folder / "images"
    records = []
    for k, (name, rgb) in enumerate(images, start=1):
        write_image(root / name, rgb)
        records.append({"id": k, "file_name": name, "height": int(rgb.shape[0]), "width": int(rgb.shape[1])})
    coco = {"images": records, "annotations": annotations, "categories": categories or CATEGORIES}
    ann = folder / "annotations.json"
    ann.write_text(json.dumps(coco), encoding="utf-8")
    return ann, root, coco


def annotation(ann_id: int, image_id: int, category_id: int, polygon: list[list[float]]) -> dict[str, Any]:
    xs, ys = polygon[0][0::2], polygon[0][1::2]
    box = [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "segmentation": polygon,
            "iscrowd": 0, "area": box[2] * box[3], "bbox": box}


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (inputs must be left untouched)."""
    import hashlib

    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}

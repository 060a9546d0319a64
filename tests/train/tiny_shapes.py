"""Tiny synthetic datasets the trainer can learn in two CPU epochs: coloured shapes on a dark noisy background."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np

SIDE = 64


def _rect(x: int, y: int, w: int, h: int) -> list[float]:
    return [float(v) for v in (x, y, x + w, y, x + w, y + h, x, y + h)]


def write_dataset(folder: Path, n: int, *, multilabel: bool, seed: int = 0) -> Path:
    """A datatools dataset folder (annotations.json + images/) of ``n`` 64x64 images.

    Multiclass: a red square (class "red") and a blue rectangle (class "blue") that never overlap.
    Multilabel: class "big" and class "core" overlap heavily (the core lies inside the big square), plus "side".
    """
    rng = np.random.default_rng(seed)
    names = ["big", "core", "side"] if multilabel else ["red", "blue"]
    colours = {"red": (230, 40, 40), "blue": (40, 60, 230), "big": (40, 200, 60), "core": (240, 240, 40),
               "side": (200, 40, 200)}
    cats = [{"id": 11 + k, "name": name, "supercategory": "shape"} for k, name in enumerate(names)]
    images, anns = [], []
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for i in range(n):
        img = rng.integers(0, 50, size=(SIDE, SIDE, 3), dtype=np.uint8)
        shapes: list[tuple[str, list[float]]] = []
        if multilabel:
            x, y = (int(v) for v in rng.integers(2, 22, size=2))
            shapes.append(("big", _rect(x, y, 30, 30)))
            shapes.append(("core", _rect(x + 8, y + 8, 14, 14)))
            if i % 2 == 0:
                shapes.append(("side", _rect(int(rng.integers(2, 50)), 52, 10, 8)))
        else:
            x, y = (int(v) for v in rng.integers(2, 18, size=2))
            shapes.append(("red", _rect(x, y, 16, 16)))
            if i % 3 != 2:
                shapes.append(("blue", _rect(int(rng.integers(2, 40)), 44, 20, 12)))
        for name, poly in shapes:
            pts = np.asarray(poly, dtype=np.int32).reshape(-1, 2)
            paint = np.full((SIDE, SIDE), 0, np.uint8)
            cv2.fillPoly(paint, [pts], 1)
            img[paint == 1] = colours[name]
            cat = cats[names.index(name)]["id"]
            xs, ys = poly[0::2], poly[1::2]
            anns.append({"id": len(anns) + 1, "image_id": 100 + i, "category_id": cat, "iscrowd": 0,
                         "segmentation": [poly], "area": (max(xs) - min(xs)) * (max(ys) - min(ys)),
                         "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)]})
        file_name = f"img_{i:02d}.png"
        cv2.imwrite(str(folder / "images" / file_name), img[:, :, ::-1])
        images.append({"id": 100 + i, "file_name": file_name, "width": SIDE, "height": SIDE})
    coco: dict[str, Any] = {"images": images, "annotations": anns, "categories": cats}
    (folder / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
    return folder

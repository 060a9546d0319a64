"""A synthetic lateral dataset: ``left_x`` on one side of the image, ``right_x`` on the other, ``upper_y`` above,
``lower_y`` below (tests of :mod:`datatools.core.lateral` and the ops that mirror)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

H, W = 48, 64
CATEGORIES = [{"id": 1, "name": "left_x"}, {"id": 2, "name": "right_x"}, {"id": 3, "name": "heart"},
              {"id": 4, "name": "upper_y"}, {"id": 5, "name": "lower_y"}]


def _l_shape(x0: int, y0: int, s: int) -> list[float]:
    """An L (not symmetric under any flip), ``s`` pixels a side."""
    t = s // 3
    return [x0, y0, x0 + t, y0, x0 + t, y0 + s - t, x0 + s, y0 + s - t, x0 + s, y0 + s, x0, y0 + s]


def write_lateral(folder: Path) -> Path:
    """Two images: left_x on the image's right (the X-ray convention), right_x on its left, upper_y at the top,
    lower_y at the bottom, heart off-centre."""
    rng = np.random.default_rng(0)
    images, anns = [], []
    layout = {1: (40, 14, 18), 2: (4, 14, 18), 3: (26, 20, 10), 4: (24, 1, 12), 5: (22, 34, 12)}
    for k in range(2):
        name = f"img{k}.png"
        (folder / "images").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "images" / name), rng.integers(0, 256, (H, W, 3), dtype=np.uint8))
        images.append({"id": 100 + k, "file_name": name, "width": W, "height": H})
        for cid, (x0, y0, s) in layout.items():
            seg = _l_shape(x0 + k, y0, s)
            anns.append({"id": 1000 + 10 * k + cid, "image_id": 100 + k, "category_id": cid, "iscrowd": 0,
                         "segmentation": [seg], "area": 1.0, "bbox": [x0 + k, y0, s, s]})
    ann = folder / "annotations.json"
    ann.write_text(json.dumps({"images": images, "annotations": anns, "categories": CATEGORIES}))
    return ann

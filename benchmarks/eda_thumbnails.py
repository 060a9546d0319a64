"""eda's gallery thumbnails of a 2048 x 2048 X-ray-like image with 29 overlapping classes: the mask painted at
full size and scaled down (before) against painted at the thumbnail's size (:func:`datatools.eda.stats.thumbnail_mask`),
CPU milliseconds per thumbnail, best of 5, interleaved in one process.

    .venv/bin/python benchmarks/eda_thumbnails.py
"""

from __future__ import annotations

import time

import numpy as np

from datatools.core.classes import ClassMap
from datatools.core.masks import OverlapPolicy, rasterize_semantic
from datatools.eda.colors import class_colors
from datatools.eda.gallery import render_thumbnail
from datatools.eda.stats import ImageJob, StatsConfig, _thumbnail


def main() -> None:
    rng = np.random.default_rng(0)
    k, side = 29, 2048
    cm = ClassMap.from_categories([{"id": i, "name": f"c{i}"} for i in range(1, k + 1)])
    anns = []
    t = np.linspace(0, 2 * np.pi, 60, endpoint=False)
    for i in range(1, k + 1):  # wavy blobs that overlap, like bones
        cx, cy = rng.uniform(300, side - 300, 2)
        r = rng.uniform(60, 250) * (1 + 0.2 * np.sin(5 * t))
        anns.append({"id": i, "category_id": i,
                     "segmentation": [np.column_stack([cx + r * np.cos(t), cy + r * np.sin(t)]).ravel().tolist()]})
    image = rng.integers(0, 255, (side, side, 3), dtype=np.uint8)
    job = ImageJob(0, 1, "x.png", side, side, anns, thumbnail=True)
    cfg = StatsConfig(".", cm, OverlapPolicy(), palette=class_colors(k))

    def full_size() -> bytes:
        return render_thumbnail(image, rasterize_semantic(anns, side, side, cm, OverlapPolicy()), cfg.palette, 320)

    best = {"full-size mask": float("inf"), "thumbnail-size mask": float("inf")}
    for _ in range(5):
        for name, fn in (("full-size mask", full_size), ("thumbnail-size mask", lambda: _thumbnail(image, job, cfg))):
            start = time.process_time()
            fn()
            best[name] = min(best[name], time.process_time() - start)
    for name, seconds in best.items():
        print(f"{name}: {1e3 * seconds:.1f} ms per thumbnail")
    print(f"ratio: {best['full-size mask'] / best['thumbnail-size mask']:.1f}x")


if __name__ == "__main__":
    main()

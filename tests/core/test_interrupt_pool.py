"""Ctrl-C in a command whose per-image work runs in the process pool prints one line, leaves nothing (issue 11
item 2): the workers ignore SIGINT, the parent stops the pool."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
from interrupts import Command

N, SIDE = 1500, 1024


def _many_images(folder: Path) -> tuple[Path, Path]:
    """``N`` large images (hard links of one file, so the set-up is cheap) with one polygon each."""
    images = folder / "images"
    images.mkdir(parents=True)
    first = images / "img_0000.png"
    cv2.imwrite(str(first), np.random.default_rng(0).integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8))
    records, anns = [], []
    for i in range(N):
        name = f"img_{i:04d}.png"
        if i:
            os.link(first, images / name)
        records.append({"id": 1000 + i, "file_name": name, "width": SIDE, "height": SIDE})
        poly = [float(v) for v in (10, 10, 900, 40, 800, 1000, 30, 700)]
        anns.append({"id": i + 1, "image_id": 1000 + i, "category_id": 5, "segmentation": [poly], "iscrowd": 0,
                     "area": 700000.0, "bbox": [10, 10, 890, 990]})
    ann = folder / "annotations.json"
    ann.write_text(json.dumps({"images": records, "annotations": anns,
                               "categories": [{"id": 5, "name": "thing", "supercategory": ""}]}))
    return ann, images


def test_ctrl_c_in_convert_masks_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    ann, images = _many_images(tmp_path / "src")
    out = tmp_path / "outs" / "masks"
    cmd = Command(["convert", "masks", "--ann", str(ann), "--images", str(images), "--out", str(out),
                   "--workers", "2"])
    # mid-run: the staging folder already holds some masks
    cmd.wait_for(lambda: any((tmp_path / "outs").glob(".masks.*.partial/ann_dir/*.png")))
    code = cmd.interrupt()
    assert code == 130, cmd.stderr
    assert cmd.stderr == ["error: interrupted; nothing was written"]
    assert list((tmp_path / "outs").iterdir()) == []  # neither the output nor its staging folder

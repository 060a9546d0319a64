"""Tiny inputs of the pseudo-label tests: a COCO dataset of random images, probability folders in the layout of
``datatools train predict --save-probs``, and a numpy reference of the rule (scipy for the components)."""

from __future__ import annotations

import io
import json
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
from scipy import ndimage

from datatools.core.classes import ClassMap

EIGHT = np.ones((3, 3), dtype=int)


def write_images(folder: Path, n: int, hw: tuple[int, int], categories: list[dict[str, Any]],
                 seed: int = 0) -> Path:
    """A dataset folder (annotations.json without annotations + images/) of ``n`` random PNG images."""
    rng = np.random.default_rng(seed)
    (folder / "images" / "sub").mkdir(parents=True, exist_ok=True)
    images = []
    for i in range(n):
        name = f"sub/im{i}.png" if i % 2 else f"im{i}.png"
        cv2.imwrite(str(folder / "images" / name), rng.integers(0, 255, (*hw, 3), dtype=np.uint8))
        images.append({"id": 50 + 3 * i, "file_name": name, "height": hw[0], "width": hw[1], "extra": i})
    coco = {"info": {"kept": True}, "images": images, "annotations": [], "categories": categories}
    (folder / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
    return folder


def smooth_probs(rng: np.random.Generator, channels: int, hw: tuple[int, int], multilabel: bool) -> np.ndarray:
    """Blobby (C, H, W) probabilities: smoothed noise through softmax or sigmoid, stored as float16."""
    logits = np.stack([cv2.GaussianBlur(rng.normal(0, 1, hw).astype(np.float32), (0, 0), 3) * 12
                       for _ in range(channels)])
    if multilabel:
        p = 1 / (1 + np.exp(-logits))
    else:
        e = np.exp(logits - logits.max(axis=0))
        p = e / e.sum(axis=0)
    return p.astype(np.float16)


def write_probs(folder: Path, probs: dict[str, np.ndarray], categories: list[dict[str, Any]], mode: str) -> Path:
    """A predict folder: classes.json, predict.json, probs/<stem>.npz (float16 at the image size)."""
    (folder / "probs").mkdir(parents=True, exist_ok=True)
    ClassMap.from_categories(categories).save(folder / "classes.json")
    (folder / "predict.json").write_text(json.dumps({"mode": mode, "ckpts": ["x.pt"], "tta": None}))
    for name, p in probs.items():
        dst = folder / "probs" / str(PurePosixPath(name).with_suffix(".npz"))
        dst.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        np.savez_compressed(buf, probs=p, shape_hw=np.asarray(p.shape[1:], dtype=np.int64))
        dst.write_bytes(buf.getvalue())
    return folder


def small_components(mask: np.ndarray, min_area: int) -> np.ndarray:
    labels, n = ndimage.label(mask, structure=EIGHT)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)
    small = sizes < min_area
    small[0] = False
    return small[labels]


def reference_multiclass(p: np.ndarray, t: np.ndarray, min_area: int) -> np.ndarray:
    """The rule by hand: (H, W) uint8 with 255 ignore."""
    out = np.full(p.shape[1:], 255, np.uint8)
    for y in range(p.shape[1]):
        for x in range(p.shape[2]):
            c = int(np.argmax(p[:, y, x]))
            if p[c, y, x] >= t[c]:
                out[y, x] = c
    for c in range(1, p.shape[0]):
        out[small_components(out == c, min_area)] = 255
    return out


def reference_multilabel(p: np.ndarray, t: np.ndarray, min_area: int) -> tuple[np.ndarray, np.ndarray]:
    """(positive planes, ignore) by hand."""
    pos = np.stack([p[k] >= t[k] for k in range(p.shape[0])])
    neg = np.stack([p[k] <= 1 - t[k] for k in range(p.shape[0])])
    ignore = (~pos & ~neg).any(axis=0)
    for k in range(p.shape[0]):
        ignore |= small_components(pos[k], min_area)
    return pos & ~ignore, ignore


def count_components(mask: np.ndarray) -> int:
    return int(ndimage.label(mask, structure=EIGHT)[1])

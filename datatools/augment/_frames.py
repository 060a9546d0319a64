"""Ops that only move pixels (flips): object masks go from RLE to RLE a layer at a time, never one by one.

A flip changes where pixels are, not what they are. So instead of rasterising every object, moving it and
encoding it again, the objects whose boxes do not meet are decoded together as one union RLE per layer
(:mod:`datatools.augment._layers`), the layers are moved as a stack and encoded by pycocotools, and each object's
RLE is its layer's RLE intersected with its moved box. The strings are the same as the general path's; the
frame passes are a few per image instead of several per object.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.augment._layers import Box, disjoint_layers
from datatools.augment._load import object_entry
from datatools.augment._records import rle_fields
from datatools.augment.types import ObjectRecord
from datatools.core.dataset import Dataset

__all__ = ["PixelMove", "moved_fields"]


@dataclass(frozen=True)
class PixelMove:
    """Where an op puts every pixel, said three ways.

    Attributes:
        image: moves an (H, W, C) image (a new array).
        frames: moves an (H, W, L) stack of mask frames (a view is fine).
        box: moves a box ``(y0, x0, y1, x1)`` to the box of the moved pixels.
        size_hw: the size of the output.
    """

    image: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]
    frames: Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
    box: Callable[[Box], Box]
    size_hw: tuple[int, int]


def moved_fields(ds: Dataset, image_id: Any, ann_ids: Sequence[Any] | None, hw: tuple[int, int],
                 move: PixelMove) -> tuple[tuple[ObjectRecord, ...], list[dict[str, Any]]]:
    """The objects of one image and their moved ``{"segmentation" (RLE), "area", "bbox"}``, in annotation order.

    Example:
        >>> objects, fields = moved_fields(ds, image_id, None, (640, 640), flip_move(FlipParams("h"), (640, 640)))
    """
    h, w = hw
    anns = ds.annotations_of(image_id)
    if ann_ids is not None:
        wanted = set(ann_ids)
        anns = [a for a in anns if a["id"] in wanted]
    entries = [object_entry(ann, h, w) for ann in anns]
    boxes = [box for box, _, _ in entries]
    out_h, out_w = move.size_hw
    rles: list[dict[str, Any] | None] = [None] * len(entries)
    layers = disjoint_layers(boxes)
    if layers:
        unions = [entries[layer[0]][1] if len(layer) == 1
                  else mask_utils.merge([entries[i][1] for i in layer], intersect=False) for layer in layers]
        frames = mask_utils.decode(unions)  # (H, W, L), one frame per layer
        encoded = mask_utils.encode(np.asfortranarray(move.frames(frames)))
        for layer, union in zip(layers, encoded, strict=True):
            if len(layer) == 1:
                rles[layer[0]] = union
                continue
            moved = [move.box(boxes[i]) for i in layer]  # type: ignore[arg-type]  # layers hold boxes
            xywh = np.array([[b[1], b[0], b[3] - b[1], b[2] - b[0]] for b in moved], dtype=np.float64)
            for i, rect in zip(layer, mask_utils.frPyObjects(xywh, out_h, out_w), strict=True):
                rles[i] = mask_utils.merge([union, rect], intersect=True)
    empty = [i for i, r in enumerate(rles) if r is None]  # objects without pixels
    if empty:
        zeros = np.zeros((out_h, out_w, len(empty)), dtype=np.uint8, order="F")
        for i, rle in zip(empty, mask_utils.encode(zeros), strict=True):
            rles[i] = rle
    objects = tuple(ObjectRecord(int(a["category_id"]), int(a.get("iscrowd", 0)), image_id, a.get("id"))
                    for a in anns)
    return objects, rle_fields([r for r in rles if r is not None])

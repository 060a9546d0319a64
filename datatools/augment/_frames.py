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

from datatools.augment._layers import Box, disjoint_layers, layer_unions, split_layers
from datatools.augment._load import object_entry, object_record, wanted_annotations
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
    anns = wanted_annotations(ds, image_id, ann_ids)
    entries = [object_entry(ann, h, w) for ann in anns]
    boxes = [box for box, _, _ in entries]
    layers = disjoint_layers(boxes)
    unions = []
    if layers:
        frames = mask_utils.decode(layer_unions([rle for _, rle, _ in entries], layers))  # (H, W, L)
        unions = mask_utils.encode(np.asfortranarray(move.frames(frames)))
    moved = [None if box is None else move.box(box) for box in boxes]
    rles = split_layers(unions, layers, moved, move.size_hw)
    return tuple(object_record(ann, image_id) for ann in anns), rle_fields(rles)

"""Ops that only move pixels (flips): object masks go from RLE to RLE, never through pixels.

A flip changes where pixels are, not what they are, and in COCO's column-major RLE it only reorders runs. So the
runner moves each object's RLE on its run lengths (:func:`datatools.core.rle_counts.flip_rle`): no mask is decoded,
moved or encoded, and the strings are those of the general path (rasterise every object, flip the Sample, encode
every mask; test).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.augment._load import object_record, wanted_annotations
from datatools.augment._records import rle_fields
from datatools.augment.types import Box, ObjectRecord, relabel_objects
from datatools.core.dataset import Dataset
from datatools.core.masks import annotation_to_rle

__all__ = ["PixelMove", "moved_fields"]


@dataclass(frozen=True)
class PixelMove:
    """Where an op puts every pixel, said four ways.

    Attributes:
        image: moves an (H, W, C) image (a new array).
        frames: moves an (H, W, L) stack of mask frames (a view is fine).
        box: moves a box ``(y0, x0, y1, x1)`` to the box of the moved pixels.
        rle: moves one compressed COCO RLE (a new RLE of the output size).
        size_hw: the size of the output.
        categories: category id -> id for the classes the move renames (a mirror swaps lateral pairs).
    """

    image: Callable[[npt.NDArray[np.uint8]], npt.NDArray[np.uint8]]
    frames: Callable[[npt.NDArray[Any]], npt.NDArray[Any]]
    box: Callable[[Box], Box]
    rle: Callable[[dict[str, Any]], dict[str, Any]]
    size_hw: tuple[int, int]
    categories: Mapping[int, int] = field(default_factory=dict)


def moved_fields(ds: Dataset, image_id: Any, ann_ids: Sequence[Any] | None, hw: tuple[int, int],
                 move: PixelMove) -> tuple[tuple[ObjectRecord, ...], list[dict[str, Any]]]:
    """The objects of one image (renamed as the move says) and their moved ``{"segmentation" (RLE), "area",
    "bbox"}``, in annotation order.

    Example:
        >>> objects, fields = moved_fields(ds, image_id, None, (640, 640), flip_move(FlipParams("h"), (640, 640)))
    """
    h, w = hw
    anns = wanted_annotations(ds, image_id, ann_ids)
    rles = [move.rle(annotation_to_rle(ann["segmentation"], h, w)) for ann in anns]
    objects = relabel_objects([object_record(ann, image_id) for ann in anns], move.categories)
    return objects, rle_fields(rles)

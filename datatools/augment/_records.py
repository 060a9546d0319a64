"""Output object masks as COCO annotation fields: compressed RLE (exact) or polygons.

Polygons are traced on the mask's pixel boundaries (on a 2x nearest-neighbour upsampling, so that the traced
outline runs along pixel edges, not through pixel centres); for a mask without holes the polygon rasterises back
to the same pixels. COCO polygons cannot hold holes, so a mask with holes is written without them and counted as
inexact.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.augment._layers import disjoint_layers, split_layers
from datatools.augment.types import Box
from datatools.core.masks import annotation_to_rle, mask_to_rle, rle_to_mask

__all__ = ["Segmentation", "crops_to_fields", "mask_to_fields", "mask_to_polygons", "masks_to_fields", "rle_fields"]


class Segmentation(str, Enum):
    """How output masks are written: compressed RLE (exact, the default) or polygons."""

    RLE = "rle"
    POLYGON = "polygon"


def _bbox_xywh(mask: npt.NDArray[np.bool_]) -> list[float]:
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(ys):
        return [0.0, 0.0, 0.0, 0.0]
    return [float(xs[0]), float(ys[0]), float(xs[-1] - xs[0] + 1), float(ys[-1] - ys[0] + 1)]


def mask_to_polygons(mask: npt.NDArray[np.bool_]) -> list[list[float]]:
    """Outer outlines of an (H, W) mask as COCO polygons ``[[x0, y0, x1, y1, ...], ...]`` (pixel-corner
    coordinates).

    Example:
        >>> m = np.zeros((8, 8), bool); m[2:5, 3:6] = True
        >>> mask_to_polygons(m)
        [[3.0, 2.0, 3.0, 5.0, 6.0, 5.0, 6.0, 2.0]]
    """
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(ys):
        return []
    y0, x0 = int(ys[0]), int(xs[0])
    sub = mask[y0:int(ys[-1]) + 1, x0:int(xs[-1]) + 1].astype(np.uint8)
    up = cv2.copyMakeBorder(np.repeat(np.repeat(sub, 2, axis=0), 2, axis=1), 1, 1, 1, 1, cv2.BORDER_CONSTANT, value=0)
    contours, _ = cv2.findContours(up, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    polygons = []
    for c in contours:
        pts = c.reshape(-1, 2).astype(np.float64)
        # upsampled pixel centres (2i + 0.5) of the boundary, back to source pixel corners, rounded to a quarter
        pts = np.round(((pts - 1 + 0.5) / 2 + [x0, y0]) * 4) / 4
        if len(pts) >= 3:
            polygons.append(pts.ravel().tolist())
    return polygons


def mask_to_fields(mask: npt.NDArray[np.bool_], segmentation: Segmentation | str = Segmentation.RLE
                   ) -> tuple[dict[str, Any], bool]:
    """``({"segmentation", "area", "bbox"}, exact)`` for one (H, W) object mask.

    With polygons, ``exact`` tells whether the polygons rasterise back to the same pixels (False for masks with
    holes, or outlines too thin to trace); area and bbox are then those of the polygons' pixels.

    Example:
        >>> fields, exact = mask_to_fields(mask, "rle")
        >>> exact
        True
    """
    if Segmentation(segmentation) is Segmentation.RLE:
        return {"segmentation": mask_to_rle(mask), "area": float(mask.sum()), "bbox": _bbox_xywh(mask)}, True
    polygons = mask_to_polygons(mask)
    h, w = mask.shape
    back = rle_to_mask(annotation_to_rle(polygons, h, w)) if polygons else np.zeros_like(mask)
    exact = bool(np.array_equal(back, mask))
    return {"segmentation": polygons, "area": float(back.sum()), "bbox": _bbox_xywh(back)}, exact


def masks_to_fields(masks: npt.NDArray[np.bool_], segmentation: Segmentation | str = Segmentation.RLE,
                    boxes_yxyx: Sequence[tuple[int, int, int, int] | None] | None = None
                    ) -> tuple[list[dict[str, Any]], int]:
    """:func:`mask_to_fields` for an (N, H, W) stack, and how many objects are inexact.

    RLE goes through pycocotools; given the objects' boxes (each holding its mask), objects whose boxes do not meet
    are encoded together, a layer per pycocotools call, and each object's RLE is its layer's RLE intersected with
    its box (:mod:`datatools.augment._layers`: the same strings as one encode per object). Area and bbox are read
    from the RLE.

    Example:
        >>> fields, inexact = masks_to_fields(sample.masks, boxes_yxyx=sample.boxes_yxyx)
    """
    if Segmentation(segmentation) is Segmentation.POLYGON:
        pairs = [mask_to_fields(m, Segmentation.POLYGON) for m in masks]
        return [f for f, _ in pairs], sum(not exact for _, exact in pairs)
    if not len(masks):
        return [], 0
    if boxes_yxyx is None:
        return rle_fields(mask_utils.encode(np.asfortranarray(masks.transpose(1, 2, 0)).view(np.uint8))), 0
    crops = [None if b is None else masks[i, b[0]:b[2], b[1]:b[3]] for i, b in enumerate(boxes_yxyx)]
    return crops_to_fields(boxes_yxyx, crops, masks.shape[1:]), 0


def crops_to_fields(boxes_yxyx: Sequence[Box | None], crops: Sequence[npt.NDArray[np.bool_] | None],
                    size_hw: tuple[int, int]) -> list[dict[str, Any]]:
    """RLE fields of objects given as their boxes and the masks inside them (``crops[i]`` of the shape of
    ``boxes_yxyx[i]``; None for an empty object) in an output of ``size_hw``.

    Objects whose boxes do not meet are painted into one frame and encoded together, a layer per pycocotools call,
    and each object's RLE is its layer's RLE intersected with its box (:mod:`datatools.augment._layers`: the same
    strings as one encode per object).
    """
    h, w = size_hw
    layers = disjoint_layers(boxes_yxyx)
    frames = np.zeros((h, w, len(layers)), dtype=np.uint8, order="F")
    for k, layer in enumerate(layers):
        for i in layer:  # layers hold only objects with a box, hence a crop
            y0, x0, y1, x1 = boxes_yxyx[i]  # type: ignore[misc]
            frames[y0:y1, x0:x1, k] = crops[i]  # type: ignore[assignment]
    unions = mask_utils.encode(frames) if layers else []
    return rle_fields(split_layers(unions, layers, boxes_yxyx, (h, w)))


def rle_fields(rles: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{"segmentation", "area", "bbox"}`` of each pycocotools RLE (counts made JSON text; area and bbox read from
    the RLE)."""
    if not len(rles):
        return []
    areas, boxes = mask_utils.area(list(rles)), mask_utils.toBbox(list(rles))
    fields = []
    for rle, area, box in zip(rles, areas.tolist(), boxes.tolist(), strict=True):
        counts = rle["counts"]
        seg = {**rle, "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}
        fields.append({"segmentation": seg, "area": float(area), "bbox": [float(v) for v in box]})
    return fields

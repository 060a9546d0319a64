"""Objects grouped into layers whose boxes do not meet, so pycocotools encodes a layer instead of an object.

Encoding a mask costs a pass over the whole frame, however small the object. Inside a layer no box meets another,
so a layer of output masks is painted into one frame and encoded once, and each object's RLE is the union's RLE
intersected with its box (pycocotools ``merge``). Same RLE strings; a few frame passes per image instead of one per
object. (Reading objects needs no layers: :func:`datatools.core.rle_counts.rle_crop` decodes an object's box only.)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from datatools.augment.types import Box

__all__ = ["disjoint_layers", "split_layers"]

Rle = dict[str, Any]


def disjoint_layers(boxes: Sequence[Box | None]) -> list[list[int]]:
    """Indices of ``boxes`` in layers within which no two boxes overlap (first fit, in order); ``None`` boxes
    (empty objects) are left out.

    Example:
        >>> disjoint_layers([(0, 0, 5, 5), (2, 2, 8, 8), (6, 6, 9, 9), None])
        [[0, 2], [1]]
    """
    layers: list[list[int]] = []
    placed: list[list[Box]] = []
    for i, box in enumerate(boxes):
        if box is None:
            continue
        y0, x0, y1, x1 = box
        for layer, others in zip(layers, placed, strict=True):
            if not any(b[0] < y1 and y0 < b[2] and b[1] < x1 and x0 < b[3] for b in others):
                layer.append(i)
                others.append(box)
                break
        else:
            layers.append([i])
            placed.append([box])
    return layers


def split_layers(unions: Sequence[Rle], layers: Sequence[Sequence[int]], boxes: Sequence[Box | None],
                 size_hw: tuple[int, int]) -> list[Rle]:
    """Each object's RLE from its layer's union RLE (``unions[k]`` for ``layers[k]``): the union intersected with
    the object's box, which holds its mask (pycocotools ``frPyObjects`` + ``merge``). Objects in no layer (``None``
    boxes) get an empty RLE. Returned in the order of ``boxes``.

    Example:
        >>> layers = disjoint_layers(boxes)
        >>> rles = split_layers(mask_utils.encode(frames), layers, boxes, (h, w))
    """
    h, w = size_hw
    rles: list[Rle | None] = [None] * len(boxes)
    for union, layer in zip(unions, layers, strict=True):
        if len(layer) == 1:
            rles[layer[0]] = union
            continue
        placed = [b for b in (boxes[i] for i in layer) if b is not None]  # all of them: layers hold boxes
        xywh = np.array([[b[1], b[0], b[3] - b[1], b[2] - b[0]] for b in placed], dtype=np.float64)
        for i, rect in zip(layer, mask_utils.frPyObjects(xywh, h, w), strict=True):
            rles[i] = mask_utils.merge([union, rect], intersect=True)
    empty = [i for i, r in enumerate(rles) if r is None]
    if empty:
        for i, rle in zip(empty, mask_utils.encode(np.zeros((h, w, len(empty)), np.uint8, order="F")), strict=True):
            rles[i] = rle
    return [r for r in rles if r is not None]

"""Objects grouped into layers whose boxes do not meet, so pycocotools works on a layer instead of an object.

Decoding or encoding an RLE costs a pass over the whole frame, however small the object. Inside a layer no box
meets another, so the union of the layer's masks, cut to one object's box, is that object's mask, exactly: a
layer is decoded once (the union of its RLEs, by pycocotools) and each object cut out of it, and a layer of
output masks is encoded once and each object's RLE is the union's RLE intersected with its box (pycocotools
again). Same pixels, same RLE strings; a few frame passes per image instead of one per object.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["disjoint_layers"]

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), end exclusive


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

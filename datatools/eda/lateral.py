"""Lateral classes in ``datatools eda``: the pairs a flip would swap, and on which side of the image each class sits.

The side comes from the spatial prior the pass already computes: in each image, a class sits on the image's left
when the centre of the heat-map cells its annotations cover lies left of the grid's middle (right, top, bottom
likewise; exactly in the middle counts for neither). So a user sees the convention before training (an X-ray's
``left_lung`` on the image's right in 100% of images) and which flips keep it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.classes import ClassMap
from datatools.core.lateral import find_pairs

__all__ = ["SIDE_COLUMNS", "image_sides", "lateral_lines", "lateral_summary"]

#: columns of ``Totals.sides``: images holding the class, then on the image's left, right, top, bottom
SIDE_COLUMNS = ("images", "left", "right", "top", "bottom")


def image_sides(plane: npt.NDArray[np.uint8]) -> npt.NDArray[np.int64]:
    """``(1, left, right, top, bottom)`` as 0/1 for one class's heat-map plane in one image.

    Example:
        >>> p = np.zeros((4, 4), np.uint8); p[:2, 3] = 1
        >>> image_sides(p).tolist()
        [1, 0, 1, 1, 0]
    """
    m = cv2.moments(plane, binaryImage=True)  # exact integer sums of the cells' x and y: the centroid
    out = np.zeros(len(SIDE_COLUMNS), dtype=np.int64)
    out[0] = 1
    if not m["m00"]:
        return out
    mid_y, mid_x = (plane.shape[0] - 1) / 2, (plane.shape[1] - 1) / 2
    cx, cy = m["m10"] / m["m00"], m["m01"] / m["m00"]
    out[1:] = (cx < mid_x, cx > mid_x, cy < mid_y, cy > mid_y)
    return out


def lateral_summary(sides: npt.NDArray[np.int64], class_map: ClassMap, categories: Sequence[Mapping[str, Any]],
                    labels: Sequence[str]) -> dict[str, Any]:
    """The pairs found by name and, per class, the share of its images in which it sits on each side of the image:
    ``{"pairs": [{"flip": "horizontal", "classes": [a, b]}], "sides": {label: {"images", "left", "right", "top",
    "bottom"}}}``.

    Args:
        sides: (K + 1, 5) counts per class value (:data:`SIDE_COLUMNS`; row 0 unused).
        class_map: the dataset's class map.
        categories: COCO categories (for the pairs).
        labels: display names of the classes, in value order.
    """
    table: dict[str, Any] = {}
    label_of = {}
    for info, label in zip(class_map.classes, labels, strict=True):
        row = sides[info.value]
        n = int(row[0])
        label_of[info.category_id] = label
        table[label] = {"images": n, **{name: (float(row[k]) / n if n else 0.0)
                                        for k, name in enumerate(SIDE_COLUMNS) if k}}
    found = find_pairs(categories)
    pairs = [{"flip": flip, "classes": [label_of[a], label_of[b]]}
             for flip, axis in (("horizontal", found.horizontal), ("vertical", found.vertical)) for a, b in axis]
    return {"pairs": pairs, "sides": table}


def lateral_lines(summary: Mapping[str, Any]) -> list[str]:
    """Lines for the terminal: each pair, then where each of its classes sits
    (``left_lung on the image's right in 100% of 40 images``)."""
    lines = []
    for pair in summary["pairs"]:
        lines.append(f"lateral pair: {' <-> '.join(pair['classes'])} (swapped by {pair['flip']} flips)")
        sides = ("left", "right") if pair["flip"] == "horizontal" else ("top", "bottom")
        for label in pair["classes"]:
            row = summary["sides"][label]
            if row["images"]:
                side = max(sides, key=lambda s: row[s])
                lines.append(f"  {label} on the image's {side} in {row[side]:.0%} of {row['images']} images")
    return lines

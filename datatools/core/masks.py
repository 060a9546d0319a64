"""The one rasteriser: COCO annotations (polygons, RLE, crowd) to semantic or multilabel masks.

Every annotation goes through :func:`annotation_to_rle`, which follows pycocotools ``COCO.annToRLE`` exactly,
and is decoded by pycocotools, so masks equal ``annToMask`` pixel for pixel. What this module adds is the
overlap policy: which class a pixel gets when several annotations claim it.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.errors import InvalidDatasetError

# pycocotools' decoder trips a numpy 2 deprecation on every call; the result is correct, the noise is not useful.
warnings.filterwarnings("ignore", message="__array__ implementation doesn't accept a copy keyword",
                        category=DeprecationWarning, module="pycocotools")

__all__ = [
    "Crowd",
    "Overlap",
    "OverlapPolicy",
    "annotation_to_rle",
    "mask_to_rle",
    "paint_order",
    "rasterize_multilabel",
    "rasterize_semantic",
    "rle_to_mask",
]


class Overlap(str, Enum):
    """How a pixel claimed by several annotations is labelled."""

    SMALLER_ON_TOP = "smaller-on-top"  #: paint by true pixel area, largest first; ties in annotation order
    ORDER = "order"  #: paint in annotation order, the last one wins
    CLASS_PRIORITY = "class-priority"  #: listed classes win, first listed on top; then smaller-on-top
    MAX_ID = "max-id"  #: the highest category id wins; ties in annotation order
    CONFLICT_IGNORE = "conflict-ignore"  #: pixels claimed by two different classes become ignore (255)


class Crowd(str, Enum):
    """What ``iscrowd`` regions become in a semantic mask."""

    CLASS = "class"  #: their class, like any other annotation
    IGNORE = "ignore"  #: the ignore value 255, on top of everything

    @classmethod
    def parse(cls, value: str | Crowd) -> Crowd:
        """``Crowd(value)`` with a message that lists the choices."""
        try:
            return cls(value)
        except ValueError:
            raise ValueError(f"crowd must be 'class' or 'ignore', got {value!r}") from None


@dataclass(frozen=True)
class OverlapPolicy:
    """An overlap rule plus, for ``class-priority``, the class names from highest to lowest priority."""

    kind: Overlap = Overlap.SMALLER_ON_TOP
    priority: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (self.kind is Overlap.CLASS_PRIORITY) != bool(self.priority):
            raise ValueError("class names are given with class-priority and only there: class-priority:A,B")

    @classmethod
    def parse(cls, value: str | Overlap | OverlapPolicy) -> OverlapPolicy:
        """Parse ``smaller-on-top``, ``order``, ``max-id``, ``conflict-ignore`` or ``class-priority:A,B``."""
        if isinstance(value, OverlapPolicy):
            return value
        if isinstance(value, Overlap):
            return cls(value)
        name, _, names = value.partition(":")
        try:
            kind = Overlap(name.strip())
        except ValueError:
            allowed = ", ".join(o.value for o in Overlap)
            raise ValueError(f"unknown overlap policy {value!r}; choose one of {allowed}") from None
        priority = tuple(n.strip() for n in names.split(",") if n.strip())
        return cls(kind, priority)

    def __str__(self) -> str:
        return self.kind.value + (":" + ",".join(self.priority) if self.priority else "")


def annotation_to_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    """One annotation's segmentation as a compressed RLE, exactly as pycocotools ``annToRLE`` builds it.

    Polygons (several parts allowed) are merged into one mask; uncompressed RLE is compressed at the image
    size; compressed RLE is returned as is.

    Example:
        >>> rle = annotation_to_rle([[0, 0, 4, 0, 4, 4]], 8, 8)
        >>> int(mask_utils.area(rle)) > 0
        True
    """
    if isinstance(segmentation, list):
        return mask_utils.merge(mask_utils.frPyObjects(segmentation, height, width))
    if isinstance(segmentation["counts"], list):
        return mask_utils.frPyObjects(segmentation, height, width)
    return segmentation


def rle_to_mask(rle: dict[str, Any]) -> npt.NDArray[np.bool_]:
    """Decode one compressed RLE to an (H, W) bool mask."""
    return mask_utils.decode(rle).astype(bool)


def mask_to_rle(mask: npt.NDArray[np.bool_]) -> dict[str, Any]:
    """Encode an (H, W) mask as compressed COCO RLE with ``counts`` as a str (JSON-ready)."""
    rle = mask_utils.encode(np.asfortranarray(mask, dtype=np.uint8))
    rle["counts"] = rle["counts"].decode("ascii")
    return rle


def paint_order(
    annotations: Sequence[dict[str, Any]],
    areas: Sequence[float],
    policy: OverlapPolicy,
    class_map: ClassMap,
) -> list[int]:
    """Indices of ``annotations`` in the order they are painted (the last painted is on top).

    Args:
        annotations: the annotations of one image, in file order.
        areas: each annotation's true pixel area (not its ``area`` field).
        policy: the overlap policy.
        class_map: category id -> mask value.
    """
    idx = range(len(annotations))
    kind = policy.kind
    if kind in (Overlap.ORDER, Overlap.CONFLICT_IGNORE):
        return list(idx)
    if kind is Overlap.SMALLER_ON_TOP:
        return sorted(idx, key=lambda i: -areas[i])
    if kind is Overlap.MAX_ID:
        return sorted(idx, key=lambda i: annotations[i]["category_id"])
    groups = class_map.values_by_name(policy.priority)
    rank = {v: len(groups) - r for r, values in enumerate(groups) for v in values}
    values = [class_map.value_of(a["category_id"]) for a in annotations]
    return sorted(idx, key=lambda i: (rank.get(values[i], 0), -areas[i]))


def _rles(annotations: Sequence[dict[str, Any]], height: int, width: int) -> list[dict[str, Any]]:
    rles = []
    for ann in annotations:
        rle = annotation_to_rle(ann["segmentation"], height, width)
        if tuple(rle["size"]) != (height, width):
            raise InvalidDatasetError(
                f"annotation id {ann.get('id')}: RLE size {list(rle['size'])} disagrees with the image "
                f"size [height, width] = {[height, width]}"
            )
        rles.append(rle)
    return rles


def rasterize_semantic(
    annotations: Sequence[dict[str, Any]],
    height: int,
    width: int,
    class_map: ClassMap,
    overlap: str | OverlapPolicy = "smaller-on-top",
    *,
    crowd: str | Crowd = Crowd.CLASS,
    ignore: Sequence[dict[str, Any]] = (),
) -> npt.NDArray[np.uint8]:
    """Paint one image's annotations into an (H, W) uint8 class mask.

    Args:
        annotations: the image's annotations, in file order.
        height: image height.
        width: image width.
        class_map: category id -> value (``ClassMap.from_categories(coco["categories"])``).
        overlap: the overlap policy (see :class:`Overlap`), e.g. ``"class-priority:Battery,Clothing"``.
        crowd: ``"class"`` paints ``iscrowd`` regions with their class like any other annotation;
            ``"ignore"`` paints them 255 on top of everything.
        ignore: RLE regions (``images[].datatools.ignore``) painted 255 last.

    Returns:
        (H, W) uint8: 0 background, 1..K classes, 255 ignore.

    Example:
        >>> cm = ClassMap.from_categories([{"id": 1, "name": "a"}])
        >>> m = rasterize_semantic([{"category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}], 8, 8, cm)
        >>> int(m.max())
        1
    """
    policy = OverlapPolicy.parse(overlap)
    crowd = Crowd.parse(crowd)
    rles = _rles(annotations, height, width)
    areas = mask_utils.area(rles).tolist() if rles else []
    # pycocotools decodes column-major: painting the transposed (W, H) view keeps every write contiguous.
    out_t = np.zeros((width, height), dtype=np.uint8)
    conflict = policy.kind is Overlap.CONFLICT_IGNORE
    crowd_regions = []
    for i in paint_order(annotations, areas, policy, class_map):
        ann = annotations[i]
        if crowd is Crowd.IGNORE and ann.get("iscrowd", 0):
            crowd_regions.append(rles[i])
            continue
        value = class_map.value_of(ann["category_id"])
        m = mask_utils.decode(rles[i]).T.view(bool)
        if conflict:
            current = out_t[m]
            out_t[m] = np.where((current == 0) | (current == value), value, IGNORE_INDEX)
        else:
            np.putmask(out_t, m, value)
    for rle in [*crowd_regions, *ignore]:
        np.putmask(out_t, mask_utils.decode(rle).T.view(bool), IGNORE_INDEX)
    # cv2.transpose is ~10x faster than np.ascontiguousarray(out_t.T) and gives the same array
    out = cv2.transpose(out_t) if out_t.size else np.ascontiguousarray(out_t.T)
    return cast("npt.NDArray[np.uint8]", out)


def rasterize_multilabel(
    annotations: Sequence[dict[str, Any]], height: int, width: int, class_map: ClassMap
) -> npt.NDArray[np.bool_]:
    """One (H, W) bool plane per class, for datasets whose classes overlap (bones, organs).

    Returns:
        (K, H, W) bool, plane ``value - 1`` for each class of ``class_map``.
    """
    out = np.zeros((len(class_map), height, width), dtype=bool)
    for ann, rle in zip(annotations, _rles(annotations, height, width), strict=True):
        out[class_map.value_of(ann["category_id"]) - 1] |= mask_utils.decode(rle).view(bool)
    return out

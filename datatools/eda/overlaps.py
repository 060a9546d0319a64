"""Pixel counts per class and overlap facts of one image, from the annotations' RLEs.

A pixel claimed by one class only gets that class under every overlap policy; only pixels claimed by two or
more classes depend on the policy. So a class's count is the area of the union of its annotations, less what
other classes and ignore regions cover, plus the contested pixels the policy gives it. Contested pixels are
split into exact covers (the pixels covered by exactly a given set of annotations, by inclusion-exclusion of
RLE intersections) and each cover goes to the annotation the rasteriser paints last, as
``datatools.core.masks.paint_order`` says (``conflict-ignore``: 255). Nothing is decoded. When the
annotations meeting another class form too many intersections, the rasteriser paints just those annotations
instead (:func:`resolve_by_painting`). Both are tested equal to counting ``rasterize_semantic`` of the whole
image, under every policy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.masks import Overlap, OverlapPolicy, paint_order, rasterize_semantic

__all__ = ["Overlaps", "count_mask", "find_overlaps", "resolve"]

#: Most intersections worked out from RLEs before painting is cheaper (and inclusion-exclusion stays small).
MAX_INTERSECTIONS = 256
#: calcHist counts in float32, exact below 2**24 per bin; larger masks are counted with bincount.
_CALCHIST_MAX_PIXELS = 1 << 24

Rle = dict[str, Any]


def _union(rles: Sequence[Rle]) -> Rle:
    return rles[0] if len(rles) == 1 else mask_utils.merge(list(rles), intersect=False)


def _area(rle: Rle) -> int:
    return int(mask_utils.area(rle))


def _area_outside(rle: Rle, cover: Rle | None) -> int:
    """Pixels of ``rle`` outside ``cover``."""
    px = _area(rle)
    return px - _area(mask_utils.merge([rle, cover], intersect=True)) if cover is not None and px else px


@dataclass
class Overlaps:
    """Where the annotations of one image overlap.

    Attributes:
        overlap_px: pixels claimed by at least two annotations.
        conflict_px: pixels claimed by at least two classes.
        pair_px: ``(value_a, value_b, pixels)`` with ``value_a <= value_b``: pixels claimed by both classes.
        conflicting: the annotations that overlap one of another class.
    """

    overlap_px: int = 0
    conflict_px: int = 0
    pair_px: list[tuple[int, int, int]] = field(default_factory=list)
    conflicting: list[int] = field(default_factory=list)


def find_overlaps(rles: Sequence[Rle], values: Sequence[int], boxes: npt.NDArray[np.float64]) -> Overlaps:
    """Overlaps measured on RLEs: annotations whose boxes (x, y, w, h) meet are intersected.

    Example:
        >>> find_overlaps([], [], np.zeros((0, 4))).overlap_px
        0
    """
    out = Overlaps()
    if len(rles) < 2:
        return out
    x0, y0 = boxes[:, 0], boxes[:, 1]
    x1, y1 = x0 + boxes[:, 2], y0 + boxes[:, 3]
    meet = (np.minimum(x1[:, None], x1[None, :]) > np.maximum(x0[:, None], x0[None, :])) & (
        np.minimum(y1[:, None], y1[None, :]) > np.maximum(y0[:, None], y0[None, :]))
    by_pair: dict[tuple[int, int], list[Rle]] = {}
    conflicting: set[int] = set()
    for i, j in zip(*np.nonzero(np.triu(meet, 1)), strict=True):
        inter = mask_utils.merge([rles[i], rles[j]], intersect=True)
        if not _area(inter):
            continue
        a, b = sorted((values[i], values[j]))
        by_pair.setdefault((a, b), []).append(inter)
        if a != b:
            conflicting.update((int(i), int(j)))
    if not by_pair:
        return out
    out.overlap_px = _area(_union([r for rs in by_pair.values() for r in rs]))
    contested = [r for (a, b), rs in by_pair.items() if a != b for r in rs]
    out.conflict_px = _area(_union(contested)) if contested else 0
    out.pair_px = [(a, b, _area(_union(rs))) for (a, b), rs in sorted(by_pair.items())]
    out.conflicting = sorted(conflicting)
    return out


def count_mask(mask: npt.NDArray[np.uint8], n_classes: int) -> npt.NDArray[np.int64]:
    """Pixel counts of a painted mask: background, 1..K, ignore."""
    if mask.size < _CALCHIST_MAX_PIXELS:
        hist = cv2.calcHist([mask], [0], None, [256], [0, 256]).ravel().astype(np.int64)
    else:
        hist = np.bincount(mask.ravel(), minlength=256).astype(np.int64)
    out = np.zeros(n_classes + 2, dtype=np.int64)
    out[: n_classes + 1] = hist[: n_classes + 1]
    out[n_classes + 1] = hist[IGNORE_INDEX]
    return out


class _TooMany(Exception):
    pass


def _exact_covers(rles: Sequence[Rle], group: Sequence[int], ignored: Rle | None) -> dict[frozenset[int], int]:
    """Pixels outside the ignore regions covered by exactly the annotations of T, for every T of two or more
    annotations of ``group`` that covers any.

    Raises:
        _TooMany: more than MAX_INTERSECTIONS non-empty intersections.
    """
    inter: dict[tuple[int, ...], int] = {}

    def grow(members: tuple[int, ...], rle: Rle, start: int) -> None:
        for pos in range(start, len(group)):
            j = group[pos]
            both = mask_utils.merge([rle, rles[j]], intersect=True)
            px = _area_outside(both, ignored)
            if not px:  # no superset covers anything either
                continue
            inter[(*members, j)] = px
            if len(inter) > MAX_INTERSECTIONS:
                raise _TooMany
            grow((*members, j), both, pos + 1)

    for pos, i in enumerate(group):
        grow((i,), rles[i], pos + 1)
    exact: dict[frozenset[int], int] = {}
    for members in sorted(inter, key=len, reverse=True):  # Moebius inversion, largest sets first
        key = frozenset(members)
        exact[key] = inter[members] - sum(px for other, px in exact.items() if key < other)
    return {k: v for k, v in exact.items() if v}


@dataclass(frozen=True)
class Resolution:
    """Pixel counts under the chosen policy and the pixels each compared policy labels differently."""

    class_px: npt.NDArray[np.int64]
    changed_px: dict[str, int]


def _label(members: frozenset[int], policy: OverlapPolicy, ranks: dict[str, dict[int, int]],
           values: Sequence[int]) -> int:
    if policy.kind is Overlap.CONFLICT_IGNORE:
        return IGNORE_INDEX if len({values[i] for i in members}) > 1 else values[next(iter(members))]
    rank = ranks[str(policy)]
    return values[max(members, key=rank.__getitem__)]


def resolve(
    annotations: Sequence[dict[str, Any]],
    rles: Sequence[Rle],
    values: Sequence[int],
    areas: Sequence[int],
    ignore: Sequence[Rle],
    hw: tuple[int, int],
    class_map: ClassMap,
    chosen: OverlapPolicy,
    compared: Sequence[OverlapPolicy],
    conflicting: Sequence[int],
) -> Resolution:
    """Pixel counts (background, 1..K, ignore) under ``chosen`` and the pixels each ``compared`` policy labels
    differently, without painting the image.

    Example:
        >>> res = resolve([], [], [], [], [], (4, 4), cm, OverlapPolicy(), [OverlapPolicy()], [])
        >>> res.class_px.tolist()[0]
        16
    """
    k = len(class_map)
    ignored = mask_utils.merge(list(ignore), intersect=False) if ignore else None
    try:
        covers = _exact_covers(rles, conflicting, ignored) if conflicting else {}
    except _TooMany:
        return resolve_by_painting(annotations, rles, values, ignore, hw, class_map, chosen, compared, conflicting)
    out = np.zeros(k + 2, dtype=np.int64)
    out[k + 1] = _area(ignored) if ignored is not None else 0
    contested_classes = {values[i] for i in conflicting}
    by_value: dict[int, list[Rle]] = {}
    for rle, value in zip(rles, values, strict=True):
        by_value.setdefault(value, []).append(rle)
    for value, group in by_value.items():  # pixels claimed by this class only, outside the ignore regions
        others = [rles[i] for i in conflicting if values[i] != value] if value in contested_classes else []
        cover = _union(others + ([ignored] if ignored is not None else [])) if others or ignored else None
        out[value] += _area_outside(_union(group), cover)
    changed = {str(p): 0 for p in compared}
    if covers:
        order_of = [annotations[i] for i in conflicting]
        ranks = {}
        for policy in {str(p): p for p in (chosen, *compared)}.values():
            if policy.kind is not Overlap.CONFLICT_IGNORE:
                order = paint_order(order_of, [areas[i] for i in conflicting], policy, class_map)
                ranks[str(policy)] = {conflicting[pos]: rank for rank, pos in enumerate(order)}
        for members, px in covers.items():
            if len({values[i] for i in members}) < 2:
                continue  # same-class overlap: counted with the class
            label = _label(members, chosen, ranks, values)
            out[label if label != IGNORE_INDEX else k + 1] += px
            for policy in compared:
                if _label(members, policy, ranks, values) != label:
                    changed[str(policy)] += px
    out[0] = hw[0] * hw[1] - int(out[1:].sum())
    return Resolution(out, changed)


def resolve_by_painting(
    annotations: Sequence[dict[str, Any]],
    rles: Sequence[Rle],
    values: Sequence[int],
    ignore: Sequence[Rle],
    hw: tuple[int, int],
    class_map: ClassMap,
    chosen: OverlapPolicy,
    compared: Sequence[OverlapPolicy],
    conflicting: Sequence[int],
) -> Resolution:
    """:func:`resolve` for tangles of overlaps: the rasteriser paints the annotations that meet another class.

    Every pixel they cover is labelled there as in the whole image (any other annotation covering it has the
    same class), so their painting gives the contested counts, and two policies differ exactly where their
    paintings differ; the rest is counted from the RLEs.
    """
    k = len(class_map)
    group = [annotations[i] for i in conflicting]
    mask = rasterize_semantic(group, *hw, class_map, chosen, ignore=list(ignore))
    out = count_mask(mask, k)  # its ignore count already holds every ignore region
    ignored = mask_utils.merge(list(ignore), intersect=False) if ignore else None
    painted = _union([rles[i] for i in conflicting] + ([ignored] if ignored is not None else []))
    skip = set(conflicting)
    by_value: dict[int, list[Rle]] = {}
    for i, (rle, value) in enumerate(zip(rles, values, strict=True)):
        if i not in skip:
            by_value.setdefault(value, []).append(rle)
    for value, rs in by_value.items():
        out[value] += _area_outside(_union(rs), painted)
    out[0] = hw[0] * hw[1] - int(out[1:].sum())
    changed = {}
    for policy in compared:
        if policy == chosen:
            changed[str(policy)] = 0
            continue
        other = rasterize_semantic(group, *hw, class_map, policy, ignore=list(ignore))
        changed[str(policy)] = int(cv2.countNonZero(cv2.compare(other, mask, cv2.CMP_NE)))
    return Resolution(out, changed)

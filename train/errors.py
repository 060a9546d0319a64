"""Where a model is wrong, per image and per class: under-prediction, over-prediction and confusion, each split
into a boundary band and the interior; Boundary IoU; which ground-truth objects are found. Pure numpy / cv2.

Multiclass, for class ``c`` (pixels the truth marks ignore are left out everywhere):

- under-prediction: truth ``c``, prediction background;
- confusion: truth ``c``, prediction another class ``d`` (counted per ``d``: ``confused_as``);
- over-prediction: truth background, prediction ``c``.

Every wrong pixel of the confusion matrix is counted once, to the truth's class unless the truth is background
(then to the predicted class): ``under + confusion + over`` of class ``c`` is its row's off-diagonal pixels plus
the background row's pixels in its column. Multilabel planes: false negatives (``under``) and false positives
(``over``) per plane, no confusion.

The boundary band of a class is every pixel within ``d`` (chessboard distance, as the 3x3 erosions of Cheng et al.
2021) of the contour of its true mask, on either side; the image border counts as contour. ``d`` is
``--boundary-px`` at a 512x512 image, scaled by the image's diagonal (:func:`boundary_width`).

Boundary IoU (Cheng et al., CVPR 2021) of a class: ``|G_d ∩ P_d| / |G_d ∪ P_d|`` where ``G_d`` (``P_d``) are the
pixels of the true (predicted) mask within ``d`` of its own contour, summed over the images like IoU.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.classes import IGNORE_INDEX
from datatools.core.masks import annotation_to_rle, rle_to_mask

__all__ = ["COUNTS", "ERROR_KINDS", "ImageErrors", "ObjectHit", "boundary_width", "bounding_box", "image_errors",
           "inner_band", "object_hits", "outer_band"]

#: Reference image side of ``--boundary-px``: a 512x512 image gets that many pixels, others scale by diagonal.
REFERENCE_SIDE = 512
#: Per-class counts of one image, in the column order of ``errors.parquet``.
COUNTS = ("truth_px", "pred_px", "tp_px", "under_boundary", "under_interior", "over_boundary", "over_interior",
          "confusion_boundary", "confusion_interior", "biou_inter", "biou_union")
#: Values of the error-kind map (:attr:`ImageErrors.kinds`): 0 nothing, then these.
ERROR_KINDS = {1: "correct", 2: "under", 3: "over", 4: "confusion"}


def boundary_width(height: int, width: int, px: int) -> int:
    """The band width ``d`` in pixels of an image: ``px`` at 512x512, scaled by the diagonal, at least 1.

    Example:
        >>> boundary_width(640, 640, 3), boundary_width(512, 512, 3), boundary_width(64, 64, 3)
        (4, 3, 1)
    """
    return max(1, round(px * math.hypot(height, width) / math.hypot(REFERENCE_SIDE, REFERENCE_SIDE)))


def _kernel(d: int) -> npt.NDArray[np.uint8]:
    return np.ones((2 * d + 1, 2 * d + 1), np.uint8)


def inner_band(mask: npt.NDArray[np.bool_], d: int) -> npt.NDArray[np.bool_]:
    """Pixels of ``mask`` within ``d`` (chessboard) of its contour; outside the image counts as not the mask.

    Example:
        >>> m = np.zeros((9, 9), bool); m[1:8, 1:8] = True
        >>> int(inner_band(m, 1).sum())   # a 7x7 square less its 5x5 core
        24
    """
    eroded = cv2.erode(mask.astype(np.uint8), _kernel(d), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return mask & (eroded == 0)


def outer_band(mask: npt.NDArray[np.bool_], d: int) -> npt.NDArray[np.bool_]:
    """Pixels outside ``mask`` within ``d`` (chessboard) of it."""
    dilated = cv2.dilate(mask.astype(np.uint8), _kernel(d), borderType=cv2.BORDER_CONSTANT, borderValue=0)
    return ~mask & (dilated > 0)


@dataclass
class ImageErrors:
    """One image's breakdown.

    Attributes:
        counts: (C, len(COUNTS)) int64, one row per class (multiclass: classes 1..C; multilabel: planes).
        confused_as: (C, C + 1) int64; multiclass ``[c - 1, d]`` = pixels of truth ``c`` predicted as ``d``
            (``d = 0`` is under-prediction); zeros for multilabel.
        kinds: class row -> (H, W) uint8 error-kind map (:data:`ERROR_KINDS`) for classes with an error, only
            when asked for.
    """

    counts: npt.NDArray[np.int64]
    confused_as: npt.NDArray[np.int64]
    kinds: dict[int, npt.NDArray[np.uint8]] = field(default_factory=dict)

    def error_px(self) -> npt.NDArray[np.int64]:
        """Wrong pixels per class: under + over + confusion."""
        return self.counts[:, 3:9].sum(axis=1)


def bounding_box(mask: npt.NDArray[np.bool_], pad: int) -> tuple[slice, slice] | None:
    """Slices of the box around ``mask``'s pixels grown by ``pad`` (inside the image); None when it is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    h, w = mask.shape
    return (slice(max(0, rows[0] - pad), min(h, rows[-1] + pad + 1)),
            slice(max(0, cols[0] - pad), min(w, cols[-1] + pad + 1)))


def _class_counts(truth_c: npt.NDArray[np.bool_], pred_c: npt.NDArray[np.bool_], keep: npt.NDArray[np.bool_],
                  wrong_as: npt.NDArray[Any] | None, bg_truth: npt.NDArray[np.bool_], d: int,
                  want_kinds: bool) -> tuple[list[int], npt.NDArray[np.int64] | None, npt.NDArray[np.uint8] | None,
                                             tuple[slice, slice] | None]:
    """Counts of one class inside the box around its true and predicted pixels (the rest holds none of them)."""
    box = bounding_box(truth_c | pred_c, d + 1)
    if box is None:
        return [0] * len(COUNTS), None, None, None
    g, p_raw, k, bg = truth_c[box], pred_c[box], keep[box], bg_truth[box]
    p = p_raw & k
    g_in, g_out = inner_band(g, d), outer_band(g, d)
    fn = g & ~p
    over = p & bg
    if wrong_as is None:  # multilabel: every false negative is under-prediction
        under, conf, which = fn, np.zeros_like(fn), None
    else:
        w = wrong_as[box]
        under, conf = fn & (w == 0), fn & (w != 0)
        which = np.bincount(w[fn].astype(np.int64), minlength=1)
    g_band, p_band = inner_band(g, d) & k, inner_band(p_raw, d) & k
    row = [int(g.sum()), int(p.sum()), int((g & p).sum()),
           int((under & g_in).sum()), int((under & ~g_in).sum()),
           int((over & g_out).sum()), int((over & ~g_out).sum()),
           int((conf & g_in).sum()), int((conf & ~g_in).sum()),
           int((g_band & p_band).sum()), int((g_band | p_band).sum())]
    kinds = None
    if want_kinds:
        kinds = np.zeros(g.shape, np.uint8)
        kinds[g & p] = 1
        kinds[under] = 2
        kinds[over] = 3
        kinds[conf] = 4
    return row, which, kinds, box


def image_errors(truth: npt.NDArray[Any], pred: npt.NDArray[Any], num_classes: int, boundary_px: int = 3, *,
                 kinds: bool = False) -> ImageErrors:
    """The breakdown of one image.

    Args:
        truth: multiclass (H, W) class values with 255 ignore; multilabel (K, H, W) 0/1 with 255 ignore.
        pred: multiclass (H, W) class values; multilabel (K, H, W) bool or 0/1.
        num_classes: C, the classes without background (multiclass values 1..C; multilabel planes).
        boundary_px: ``--boundary-px`` (see :func:`boundary_width`).
        kinds: also keep each class's error-kind map (for galleries).

    Example:
        >>> t = np.zeros((64, 64), np.uint8); t[10:30, 10:30] = 1
        >>> p = np.zeros_like(t); p[10:30, 12:32] = 1          # shifted 2 px right
        >>> image_errors(t, p, 1).counts[0, 3:7].tolist()       # under, over (boundary, interior); d = 1
        [22, 18, 20, 20]
    """
    h, w = truth.shape[-2:]
    d = boundary_width(h, w, boundary_px)
    counts = np.zeros((num_classes, len(COUNTS)), np.int64)
    confused = np.zeros((num_classes, num_classes + 1), np.int64)
    out = ImageErrors(counts, confused)
    multilabel = truth.ndim == 3
    if not multilabel:
        keep = truth != IGNORE_INDEX
        bg = keep & (truth == 0)
        wrong = np.where(keep, pred, 0).astype(np.uint8)
    for c in range(num_classes):
        if multilabel:
            keep = truth[c] != IGNORE_INDEX
            truth_c, pred_c, bg, wrong_c = truth[c] == 1, np.asarray(pred[c], bool), keep & (truth[c] == 0), None
        else:
            truth_c, pred_c, wrong_c = truth == c + 1, pred == c + 1, wrong
        row, which, kind, box = _class_counts(truth_c, pred_c, keep, wrong_c, bg, d, kinds)
        counts[c] = row
        if which is not None:
            confused[c, :len(which)] = which[:num_classes + 1]
            confused[c, c + 1] = 0
        if kind is not None and box is not None and counts[c, 3:9].any():
            full = np.zeros((h, w), np.uint8)
            full[box] = kind
            out.kinds[c] = full
    return out


@dataclass(frozen=True)
class ObjectHit:
    """One ground-truth object: its class row, visible pixels, and the share of them predicted as its class."""

    row: int
    area: int
    hit: float


def object_hits(annotations: Sequence[dict[str, Any]], value_of: dict[int, int], truth: npt.NDArray[Any],
                pred: npt.NDArray[Any]) -> list[ObjectHit]:
    """Each non-crowd annotation's visible pixels (multiclass: where the truth shows its class; multilabel: not
    ignored) and the share predicted as its class; objects with no visible pixel are left out.

    Args:
        annotations: the image's COCO annotations.
        value_of: category id -> class value (1..C).
        truth: as :func:`image_errors` takes it.
        pred: as :func:`image_errors` takes it.
    """
    h, w = truth.shape[-2:]
    hits = []
    for ann in annotations:
        if ann.get("iscrowd"):
            continue
        value = value_of[ann["category_id"]]
        inst = rle_to_mask(annotation_to_rle(ann["segmentation"], h, w))
        if truth.ndim == 3:
            visible = inst & (truth[value - 1] != IGNORE_INDEX)
            hit_px = np.asarray(pred[value - 1], bool)[visible]
        else:
            visible = inst & (truth == value)
            hit_px = pred[visible] == value
        area = int(visible.sum())
        if area:
            hits.append(ObjectHit(value - 1, area, float(hit_px.mean())))
    return hits

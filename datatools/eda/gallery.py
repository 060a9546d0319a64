"""Gallery thumbnails: images with their mask overlaid and class contours drawn, rare classes first."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import PurePosixPath
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.classes import IGNORE_INDEX
from datatools.core.imageio import encode_image

__all__ = ["paint_mask", "pick_gallery", "render_thumbnail", "source_key"]

_FILL_ALPHA = 0.45
_ROBOFLOW_COPY = re.compile(r"\.rf\.[0-9a-f]{16,}$")
_JPEG_QUALITY = 82


def render_thumbnail(
    image: npt.NDArray[np.uint8],
    mask: npt.NDArray[np.uint8],
    colors: npt.NDArray[np.uint8],
    width: int = 320,
) -> bytes:
    """A JPEG thumbnail of an RGB image with its semantic mask filled at 45% and each class outlined.

    Args:
        image: (H, W, 3) RGB uint8.
        mask: (H, W) uint8 class values (0 background, 255 ignore).
        colors: (256, 3) RGB colours indexed by class value.
        width: thumbnail width; smaller images keep their size.

    Returns:
        JPEG bytes.

    Example:
        >>> jpeg = render_thumbnail(np.zeros((64, 64, 3), np.uint8), np.ones((64, 64), np.uint8), class_colors(1))
        >>> jpeg[:2] == b"\\xff\\xd8"
        True
    """
    h, w = mask.shape
    if w > width:
        size = (width, max(1, round(h * width / w)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        mask = np.asarray(cv2.resize(mask, size, interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
    return encode_image(paint_mask(image, mask, colors), ".jpg", quality=_JPEG_QUALITY)


def paint_mask(image: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8],
               colors: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """``image`` with each labelled pixel ``cv2.addWeighted(image, 0.55, colour, 0.45, 0)`` and each class outlined
    (2 px, anti-aliased) in its colour (ignore in white); background pixels away from the outlines stay as they are.

    Args:
        image: (H, W, 3) RGB uint8.
        mask: (H, W) uint8 class values (0 background, 255 ignore).
        colors: (256, 3) RGB colours indexed by class value.
    """
    out = image.copy()
    labelled = mask > 0
    if labelled.any():
        tinted = cv2.addWeighted(image, 1.0 - _FILL_ALPHA, colors[mask], _FILL_ALPHA, 0.0)
        out[labelled] = tinted[labelled]
        for value in np.unique(mask[labelled]).tolist():
            plane = (mask == value).astype(np.uint8)
            contours, _ = cv2.findContours(plane, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
            color = (255, 255, 255) if value == IGNORE_INDEX else tuple(int(c) for c in colors[value])
            cv2.drawContours(out, contours, -1, color, 2, cv2.LINE_AA)
    return out


def _weight(annotation: Mapping[str, Any]) -> float:
    """How much of a class an annotation shows, from its records alone (``area``, else its box)."""
    area = annotation.get("area")
    if isinstance(area, (int, float)) and area == area:
        return float(area)
    bbox = annotation.get("bbox")
    if isinstance(bbox, list) and len(bbox) == 4 and all(isinstance(v, (int, float)) for v in bbox):
        return float(bbox[2] * bbox[3])
    return 0.0


def source_key(file_name: str) -> str:
    """The photo an image file was exported from: its stem without an export suffix such as Roboflow's
    ``_jpg.rf.<hash>`` (so the gallery does not show the same photo twice).

    Example:
        >>> source_key("train/img5_jpg.rf.9a893ecb74d8424e3bdb49ac1e1406c5.jpg")
        'train/img5_jpg'
    """
    path = PurePosixPath(file_name)
    stem = _ROBOFLOW_COPY.sub("", path.stem)
    return str(path.parent / stem) if str(path.parent) != "." else stem


def pick_gallery(
    annotations_by_image: Sequence[Sequence[Mapping[str, Any]]],
    class_order: Sequence[int],
    value_of: Mapping[Any, int],
    per_class: int = 4,
    max_total: int = 160,
    sources: Sequence[str] | None = None,
) -> dict[int, list[int]]:
    """Which images to show for each class, picked from the records before any image is read.

    Classes are served in ``class_order`` (rare first); each gets up to ``per_class`` images that contain it,
    spread over the better half of its images ranked by how much of the class they show. One image per photo
    (``sources``: one key per image, e.g. :func:`source_key`), photos no rarer class has shown first. At most
    ``max_total`` images in all.

    Args:
        annotations_by_image: each image's annotations, by image position.
        class_order: class values, rarest first.
        value_of: category id -> class value.
        per_class: images per class.
        max_total: images in all.
        sources: the photo each image comes from; copies of one photo are shown once when possible.

    Returns:
        class value -> image positions, in the order they are shown.

    Example:
        >>> pick_gallery([[{"category_id": 1, "area": 5.0}], []], [1], {1: 1})
        {1: [0]}
    """
    weight: dict[int, dict[int, float]] = {}
    for index, anns in enumerate(annotations_by_image):
        for ann in anns:
            per_image = weight.setdefault(value_of[ann["category_id"]], {})
            per_image[index] = per_image.get(index, 0.0) + _weight(ann)
    source = list(sources) if sources is not None else [str(i) for i in range(len(annotations_by_image))]
    used: set[int] = set()
    shown: set[str] = set()
    picks: dict[int, list[int]] = {}
    for value in class_order:
        budget = min(per_class, max_total - len(used))
        candidates = weight.get(value, {})
        if budget <= 0 or not candidates:
            continue
        ranked = sorted(candidates, key=lambda i: (-candidates[i], i))  # noqa: B023
        fresh: list[int] = []  # one image per photo, photos not shown yet first
        again: list[int] = []
        seen: set[str] = set()
        for i in ranked:
            if source[i] not in seen:
                seen.add(source[i])
                (again if source[i] in shown else fresh).append(i)
        pool = fresh + again
        top = pool[: max(budget, (len(fresh) + 1) // 2)]
        step = len(top) / budget
        chosen = sorted({top[min(len(top) - 1, int(k * step))] for k in range(budget)}, key=top.index)
        picks[value] = chosen
        used.update(chosen)
        shown.update(source[i] for i in chosen)
    return picks

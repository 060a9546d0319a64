"""Per-image label vectors: which classes an image holds, how many instances, how many pixels.

Three measures, one row per image and one column per class (class ``value - 1`` of the dataset's
:class:`~datatools.core.classes.ClassMap`, i.e. categories in file order):

* ``presence``: the image holds at least one annotation of the class;
* ``instances``: how many annotations of the class it holds;
* ``pixels``: the class's area, either the sum of the annotations' ``area`` fields (fast, the default) or the pixel
  count of the rasterised semantic mask (exact, overlaps resolved by the one rasteriser; needs only records).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.classes import ClassMap
from datatools.core.dataset import Dataset
from datatools.core.masks import OverlapPolicy, annotation_to_rle, rasterize_semantic
from datatools.core.parallel import parallel_map

__all__ = ["ImageLabels", "PixelSource", "Stratify", "image_labels"]


class Stratify(str, Enum):
    """What the folds balance per class."""

    PRESENCE = "presence"  #: the number of images holding the class
    INSTANCES = "instances"  #: the number of annotations of the class
    PIXELS = "pixels"  #: the class's pixel area


class PixelSource(str, Enum):
    """Where pixel counts come from."""

    AREA = "area"  #: the annotations' ``area`` fields (computed from the segmentation when absent)
    MASKS = "masks"  #: pixel counts of the rasterised semantic masks (the overlap policy decides shared pixels)


@dataclass(frozen=True)
class ImageLabels:
    """Label vectors of every image of a dataset, in ``ds.images`` order.

    Attributes:
        image_ids: (N,) the COCO image ids.
        presence: (N, K) bool.
        instances: (N, K) int64.
        pixels: (N, K) float64.
        class_names: the K class display names (category order; a shared name gets its id, see
            :func:`datatools.core.classes.display_names`).
        category_ids: the K category ids.
        pixel_source: how ``pixels`` was measured.
    """

    image_ids: tuple[Any, ...]
    presence: npt.NDArray[np.bool_]
    instances: npt.NDArray[np.int64]
    pixels: npt.NDArray[np.float64]
    class_names: tuple[str, ...]
    category_ids: tuple[int, ...]
    pixel_source: PixelSource = PixelSource.AREA

    def __post_init__(self) -> None:
        n, k = len(self.image_ids), len(self.class_names)
        for name in ("presence", "instances", "pixels"):
            shape = getattr(self, name).shape
            if shape != (n, k):
                raise ValueError(f"{name} must have shape ({n}, {k}) (images, classes), but got shape {shape}")

    def weights(self, stratify: Stratify | str) -> npt.NDArray[np.float64]:
        """The (N, K) matrix the folds balance for ``stratify``."""
        stratify = Stratify(stratify)
        if stratify is Stratify.PRESENCE:
            return self.presence.astype(np.float64)
        if stratify is Stratify.INSTANCES:
            return self.instances.astype(np.float64)
        return self.pixels


def _area(ann: dict[str, Any], height: int, width: int) -> float:
    area = ann.get("area")
    if isinstance(area, int | float) and not isinstance(area, bool) and math.isfinite(area) and area >= 0:
        return float(area)
    from pycocotools import mask as mask_utils

    return float(mask_utils.area(annotation_to_rle(ann["segmentation"], height, width)))


def _mask_pixel_counts(
    job: tuple[Sequence[dict[str, Any]], int, int], class_map: ClassMap, overlap: str
) -> list[int]:
    """Pixels of each class (values 1..K) in one image's rasterised semantic mask (a parallel_map worker)."""
    annotations, height, width = job
    if not annotations:
        return [0] * len(class_map)
    mask = rasterize_semantic(annotations, height, width, class_map, overlap)
    counts = np.bincount(mask.reshape(-1), minlength=256)
    return [int(c) for c in counts[1:len(class_map) + 1]]


def image_labels(
    ds: Dataset,
    pixel_source: PixelSource | str = PixelSource.AREA,
    *,
    overlap: str | OverlapPolicy = "smaller-on-top",
    workers: int | None = None,
    progress: bool = False,
) -> ImageLabels:
    """Presence, instance and pixel vectors of every image.

    Args:
        ds: the dataset (records only are used).
        pixel_source: ``"area"`` (sum of ``area`` fields) or ``"masks"`` (rasterise every image with
            :func:`~datatools.core.masks.rasterize_semantic` over a process pool and count pixels).
        overlap: overlap policy of the rasterised masks.
        workers: processes for rasterising.
        progress: show a progress bar while rasterising.

    Returns:
        The label vectors, rows in ``ds.images`` order.

    Example:
        >>> labels = image_labels(ds)
        >>> labels.presence.sum(axis=0)  # images per class
        array([ 0, 11, 15, 24, 26])
    """
    pixel_source = PixelSource(pixel_source)
    class_map = ds.class_map()
    n, k = len(ds.images), len(class_map)
    row = {img["id"]: i for i, img in enumerate(ds.images)}
    img_idx = np.fromiter((row[a["image_id"]] for a in ds.annotations), dtype=np.int64, count=len(ds.annotations))
    cls_idx = np.fromiter((class_map.value_of(a["category_id"]) - 1 for a in ds.annotations), dtype=np.int64,
                          count=len(ds.annotations))
    instances = np.zeros((n, k), dtype=np.int64)
    np.add.at(instances, (img_idx, cls_idx), 1)
    pixels = np.zeros((n, k), dtype=np.float64)
    if pixel_source is PixelSource.AREA:
        sizes = [(int(img["height"]), int(img["width"])) for img in ds.images]
        areas = np.fromiter((_area(a, *sizes[i]) for a, i in zip(ds.annotations, img_idx.tolist(), strict=True)),
                            dtype=np.float64, count=len(ds.annotations))
        np.add.at(pixels, (img_idx, cls_idx), areas)
    else:
        jobs = [(ds.annotations_of(img["id"]), int(img["height"]), int(img["width"])) for img in ds.images]
        fn = functools.partial(_mask_pixel_counts, class_map=class_map, overlap=str(OverlapPolicy.parse(overlap)))
        counts = parallel_map(fn, jobs, workers=workers, desc="rasterising", progress=progress)
        pixels = np.array(counts, dtype=np.float64).reshape(n, k)
    return ImageLabels(
        image_ids=tuple(img["id"] for img in ds.images),
        presence=instances > 0,
        instances=instances,
        pixels=pixels,
        class_names=tuple(class_map.display_names()),
        category_ids=tuple(int(c.category_id) for c in class_map.classes if c.category_id is not None),
        pixel_source=pixel_source,
    )

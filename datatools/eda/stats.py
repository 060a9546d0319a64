"""Per-image facts for ``datatools eda``: one decode, small results (never pixels).

:func:`image_stats` is the pure function mapped over the images. It reads the image once (channel sums and
sums of squares for the dataset mean/std, brightness, contrast) and works on the annotations' RLEs as the
rasteriser builds them: pixels claimed by two annotations or two classes, pixel counts per class under the
overlap policy and how many pixels each other policy would label differently (:mod:`datatools.eda.overlaps`),
and a downsampled per-class heat map. What it returns is a few numbers and fixed-size arrays per image, so
the parent can add them up as they arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.core.classes import ClassMap
from datatools.core.errors import UnreadableFileError
from datatools.core.imageio import read_image
from datatools.core.issues import Issue, Severity
from datatools.core.masks import Overlap, OverlapPolicy, annotation_to_rle, mask_to_rle, rasterize_semantic
from datatools.eda.gallery import render_thumbnail
from datatools.eda.overlaps import find_overlaps, resolve

__all__ = [
    "HEAT_SIZE",
    "ImageJob",
    "ImageStats",
    "PixelStats",
    "StatsConfig",
    "compared_policies",
    "image_stats",
    "image_thumbnail",
    "pixel_stats",
    "read_checked",
    "sharpness",
    "shrink_region",
    "thumbnail_mask",
]

#: Side of the per-class spatial heat map (every image is mapped onto the same HEAT_SIZE x HEAT_SIZE grid).
HEAT_SIZE = 64


def compared_policies(chosen: OverlapPolicy) -> tuple[OverlapPolicy, ...]:
    """The overlap policies an image's mask is compared with: every policy, plus ``chosen`` if it is a
    class-priority one (which needs class names, so it is only compared when given)."""
    policies = [OverlapPolicy(kind) for kind in Overlap if kind is not Overlap.CLASS_PRIORITY]
    if chosen.kind is Overlap.CLASS_PRIORITY:
        policies.append(chosen)
    return tuple(policies)


@dataclass(frozen=True)
class StatsConfig:
    """What every worker needs to know, sent once per worker.

    Attributes:
        root: image root.
        class_map: category id -> mask value.
        overlap: the overlap policy the tables are computed with.
        read_pixels: decode the images (``False``: annotation-only, no image statistics).
        heat_size: side of the per-class heat map.
        thumb_width: width of gallery thumbnails, in pixels.
        fingerprint: also return each image's pixel digest and perceptual hash (for ``eda --compare``).
    """

    root: str
    class_map: ClassMap
    overlap: OverlapPolicy
    read_pixels: bool = True
    heat_size: int = HEAT_SIZE
    thumb_width: int = 320
    fingerprint: bool = False
    palette: npt.NDArray[np.uint8] = field(default_factory=lambda: np.zeros((256, 3), np.uint8), compare=False)


@dataclass(frozen=True)
class ImageJob:
    """One image's records: small enough to send to a worker.

    Attributes:
        index: position of the image in the dataset.
        image_id: COCO image id.
        file_name: path relative to the image root.
        height: declared height.
        width: declared width.
        annotations: the image's annotations (``id``, ``category_id``, ``segmentation``, ``iscrowd``), in file order.
        ignore: ignore regions (``images[].datatools.ignore``) as RLE.
        thumbnail: also return a gallery thumbnail (JPEG bytes).
    """

    index: int
    image_id: Any
    file_name: str
    height: int
    width: int
    annotations: list[dict[str, Any]]
    ignore: list[dict[str, Any]] = field(default_factory=list)
    thumbnail: bool = False


@dataclass(frozen=True)
class PixelStats:
    """What one decode of an image tells: channel statistics in RGB order, on the 0..255 scale.

    ``channel_sum`` and ``channel_sumsq`` are sums over the image's pixels, for the dataset mean/std;
    brightness and contrast are the mean and standard deviation of the BT.601 luma ``0.299 R + 0.587 G + 0.114 B``
    (exact, not rounded to a gray image).
    """

    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_sum: tuple[float, float, float]
    channel_sumsq: tuple[float, float, float]
    pixels: int
    brightness: float
    contrast: float


@dataclass
class ImageStats:
    """The facts of one image; small: a few numbers plus arrays whose size does not depend on the image.

    Attributes:
        index: position of the image in the dataset.
        class_px: (K + 2,) int64 pixel counts of the semantic mask: background, classes 1..K, ignore.
        ann_px: true pixel area of each annotation, in file order.
        ann_bbox_xywh: each annotation's box from its mask (x, y, w, h).
        heat_values: the class values annotated in the image, one per plane of ``heat``.
        heat: (n, S, S) uint8, 1 where the class's annotations cover a cell of the heat-map grid.
        overlap_px: pixels claimed by at least two annotations.
        conflict_px: pixels claimed by at least two different classes.
        pair_px: ``(value_a, value_b, pixels)`` with ``value_a <= value_b``: pixels claimed by both classes
            (``a == b``: by two annotations of the same class).
        changed_px: policy name -> pixels whose label differs from the chosen policy's mask.
        pixels: image statistics, or ``None`` without ``read_pixels`` or when the file is bad.
        issue: the file's problem (missing, unreadable, another size than declared), or ``None``.
        thumbnail: JPEG bytes of the overlay thumbnail when asked for.
        fingerprint: ``(digest of the pixels, pHash of the 8 flips/rotations)`` when asked for and read.
    """

    index: int
    class_px: npt.NDArray[np.int64]
    ann_px: list[int]
    ann_bbox_xywh: list[tuple[float, float, float, float]]
    heat_values: tuple[int, ...]
    heat: npt.NDArray[np.uint8]
    overlap_px: int = 0
    conflict_px: int = 0
    pair_px: list[tuple[int, int, int]] = field(default_factory=list)
    changed_px: dict[str, int] = field(default_factory=dict)
    pixels: PixelStats | None = None
    issue: Issue | None = None
    thumbnail: bytes | None = None
    fingerprint: tuple[str, tuple[int, ...]] | None = None


#: BT.601 luma weights (R, G, B): brightness and contrast are the mean and std of this weighted sum.
LUMA = np.array([0.299, 0.587, 0.114])


def pixel_stats(image: npt.NDArray[np.uint8]) -> PixelStats:
    """Channel means, stds and the luma mean/std of an (H, W, 3) RGB image, from the image's first and second moments.

    The channel sums and the 3 x 3 sums of products are exact integers (OpenCV sums and squared norms; a
    product sum from ``|a - b|^2 = |a|^2 + |b|^2 - 2 a.b``), so no gray or float image is made: the luma
    variance is ``w' C w`` with ``C`` the channel covariance.
    """
    n = int(image.shape[0] * image.shape[1])
    planes = cv2.split(image)
    sums = np.array(cv2.sumElems(image)[:3], dtype=np.float64)
    prods = np.empty((3, 3), dtype=np.float64)
    for c, plane in enumerate(planes):
        prods[c, c] = cv2.norm(plane, cv2.NORM_L2SQR)
    for a, b in ((0, 1), (0, 2), (1, 2)):
        prods[a, b] = prods[b, a] = (prods[a, a] + prods[b, b] - cv2.norm(planes[a], planes[b], cv2.NORM_L2SQR)) / 2
    mean = sums / n
    cov = prods / n - np.outer(mean, mean)
    std = np.sqrt(np.maximum(np.diag(cov), 0.0))
    luma_var = float(LUMA @ cov @ LUMA)
    return PixelStats(
        mean=(float(mean[0]), float(mean[1]), float(mean[2])),
        std=(float(std[0]), float(std[1]), float(std[2])),
        channel_sum=(float(sums[0]), float(sums[1]), float(sums[2])),
        channel_sumsq=(float(prods[0, 0]), float(prods[1, 1]), float(prods[2, 2])),
        pixels=n,
        brightness=float(LUMA @ mean),
        contrast=max(luma_var, 0.0) ** 0.5,
    )


def sharpness(gray: npt.NDArray[np.uint8]) -> float:
    """Variance of the Laplacian of a grey image (the usual focus measure): near 0 for blurred or flat images.

    Example:
        >>> sharpness(np.zeros((8, 8), np.uint8))
        0.0
    """
    lap = cv2.Laplacian(gray, cv2.CV_16S, ksize=1)  # exact integers (|value| <= 4 * 255), cheaper than float
    _, std = cv2.meanStdDev(lap)
    return float(std[0, 0]) ** 2


def read_checked(job: ImageJob, root: str) -> tuple[npt.NDArray[np.uint8] | None, Issue | None]:
    """Decode an image once, as ``eda`` and ``clean`` read it: ``(RGB pixels, None)``, or ``(None, the problem)``
    when the file is missing, unreadable or another size than its record declares."""
    path = Path(root) / job.file_name
    where = f"image id {job.image_id}"
    if not path.is_file():
        return None, Issue(Severity.ERROR, "missing-image", f"{where}: file not found under the image root",
                           str(path), "images", job.index, job.image_id)
    try:
        image = read_image(path)
    except UnreadableFileError as exc:
        message = str(exc).removeprefix(f"{path}: ")
        return None, Issue(Severity.ERROR, "unreadable-image", f"{where}: {message}", str(path), "images",
                           job.index, job.image_id)
    h, w = image.shape[:2]
    if (h, w) != (job.height, job.width):
        return None, Issue(Severity.ERROR, "image-size-mismatch", f"{where}: file is {w}x{h}, the annotation file "
                           f"says {job.width}x{job.height}", str(path), "images", job.index, job.image_id)
    return image, None


def shrink_region(segmentation: Any, rle: dict[str, Any], hw: tuple[int, int],
                  out_hw: tuple[int, int]) -> dict[str, Any]:
    """One region (an annotation's segmentation, whose full-size RLE is ``rle``) on a smaller ``out_hw`` grid, as
    RLE: polygons are scaled and rasterised there by the one rasteriser (no full-size mask is made); RLE masks are
    area-averaged (a cell counts when at least half covered)."""
    (h, w), (oh, ow) = hw, out_hw
    if isinstance(segmentation, list):
        sx, sy = ow / w, oh / h
        scaled = [(np.asarray(part, dtype=np.float64).reshape(-1, 2) * (sx, sy)).ravel().tolist()
                  for part in segmentation]
        return annotation_to_rle(scaled, oh, ow)
    full = mask_utils.decode(rle)
    cover = cv2.resize(np.ascontiguousarray(full) * np.uint8(255), (ow, oh), interpolation=cv2.INTER_AREA)
    return mask_to_rle(cover >= 128)


def _heat(
    annotations: list[dict[str, Any]], rles: list[dict[str, Any]], values: list[int], hw: tuple[int, int], size: int
) -> tuple[tuple[int, ...], npt.NDArray[np.uint8]]:
    """Where each class's annotations sit, on a ``size`` x ``size`` grid: 1 where they cover a cell
    (:func:`shrink_region`)."""
    by_value: dict[int, list[dict[str, Any]]] = {}
    for ann, rle, value in zip(annotations, rles, values, strict=True):
        by_value.setdefault(value, []).append(shrink_region(ann["segmentation"], rle, hw, (size, size)))
    present = tuple(sorted(by_value))
    planes = np.zeros((len(present), size, size), dtype=np.uint8)
    for k, value in enumerate(present):
        group = by_value[value]
        union = group[0] if len(group) == 1 else mask_utils.merge(group, intersect=False)
        planes[k] = mask_utils.decode(union)
    return present, planes


def thumbnail_mask(job: ImageJob, cfg: StatsConfig, rles: list[dict[str, Any]] | None = None
                   ) -> tuple[tuple[int, int], npt.NDArray[np.uint8]]:
    """``((height, width), mask)`` of an image's overlay thumbnail: the semantic mask painted at the thumbnail's
    own size (:func:`shrink_region`; a full-size mask of a 2048 x 2048 X-ray with 29 classes would cost more
    than the rest of its pass), or at full size for an image no wider than the thumbnail.

    Args:
        job: the image's records.
        cfg: shared settings (class map, overlap policy, thumbnail width).
        rles: the annotations' full-size RLEs when already made.
    """
    h, w = job.height, job.width
    if w <= cfg.thumb_width:
        return (h, w), rasterize_semantic(job.annotations, h, w, cfg.class_map, cfg.overlap, ignore=job.ignore)
    out_hw = (max(1, round(h * cfg.thumb_width / w)), cfg.thumb_width)
    if rles is None:
        rles = [annotation_to_rle(a["segmentation"], h, w) for a in job.annotations]
    anns = [{**a, "segmentation": shrink_region(a["segmentation"], rle, (h, w), out_hw)}
            for a, rle in zip(job.annotations, rles, strict=True)]
    ignore = [shrink_region(r, annotation_to_rle(r, h, w), (h, w), out_hw) for r in job.ignore]
    return out_hw, rasterize_semantic(anns, *out_hw, cfg.class_map, cfg.overlap, ignore=ignore)


def _thumbnail(image: npt.NDArray[np.uint8], job: ImageJob, cfg: StatsConfig,
               rles: list[dict[str, Any]] | None = None) -> bytes:
    (th, tw), mask = thumbnail_mask(job, cfg, rles)
    if (th, tw) != image.shape[:2]:
        image = np.asarray(cv2.resize(image, (tw, th), interpolation=cv2.INTER_AREA), dtype=np.uint8)
    return render_thumbnail(image, mask, cfg.palette, cfg.thumb_width)


def image_stats(job: ImageJob, cfg: StatsConfig) -> ImageStats:
    """Everything ``eda`` learns from one image, decoding it once.

    Args:
        job: the image's records.
        cfg: shared settings.

    Returns:
        Small per-image facts (see :class:`ImageStats`); never the pixels.

    Raises:
        InvalidDatasetError: an annotation cannot be rasterised (validation catches this earlier).

    Example:
        >>> cm = ClassMap.from_categories([{"id": 1, "name": "a"}])
        >>> job = ImageJob(0, 1, "a.png", 8, 8, [{"category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}])
        >>> stats = image_stats(job, StatsConfig(".", cm, OverlapPolicy(), read_pixels=False))
        >>> stats.class_px.tolist()
        [48, 16, 0]
    """
    cm = cfg.class_map
    hw = (job.height, job.width)
    rles = [annotation_to_rle(a["segmentation"], *hw) for a in job.annotations]
    values = [cm.value_of(a["category_id"]) for a in job.annotations]
    areas = [int(v) for v in mask_utils.area(rles)] if rles else []
    boxes = mask_utils.toBbox(rles) if rles else np.zeros((0, 4))
    overlaps = find_overlaps(rles, values, np.asarray(boxes, dtype=np.float64))

    image, issue, pixels, fingerprint = None, None, None, None
    if cfg.read_pixels:
        image, issue = read_checked(job, cfg.root)
        if image is not None:
            pixels = pixel_stats(image)
            if cfg.fingerprint:
                from datatools.clean.scan import image_fingerprint  # the one pHash (datatools.folds.phash)

                digest, phash, _ = image_fingerprint(image)
                fingerprint = (digest, phash)
    resolved = resolve(job.annotations, rles, values, areas, job.ignore, hw, cm, cfg.overlap,
                       compared_policies(cfg.overlap), overlaps.conflicting)
    heat_values, heat = _heat(job.annotations, rles, values, hw, cfg.heat_size)
    thumb = _thumbnail(image, job, cfg, rles) if job.thumbnail and image is not None else None
    return ImageStats(
        index=job.index,
        class_px=resolved.class_px,
        ann_px=areas,
        ann_bbox_xywh=[(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in boxes],
        heat_values=heat_values,
        heat=heat,
        overlap_px=overlaps.overlap_px,
        conflict_px=overlaps.conflict_px,
        pair_px=overlaps.pair_px,
        changed_px=resolved.changed_px,
        pixels=pixels,
        issue=issue,
        thumbnail=thumb,
        fingerprint=fingerprint,
    )


def image_thumbnail(job: ImageJob, cfg: StatsConfig) -> bytes | None:
    """The overlay thumbnail of one image (for images picked after the pass, e.g. outliers), or ``None``
    when the file cannot be read.

    Example:
        >>> jpeg = image_thumbnail(job, cfg)
    """
    image, _ = read_checked(job, cfg.root)
    return None if image is None else _thumbnail(image, job, cfg)

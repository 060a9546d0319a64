"""The one streaming pass of ``datatools clean``: each image is decoded once and reduced to small facts.

:func:`scan_image` is the pure function mapped over the images. It reads the image with ``eda``'s reader and
statistics (:func:`datatools.eda.stats.read_checked`, :func:`~datatools.eda.stats.pixel_stats`), adds the
sharpness, a digest of the decoded pixels (exact duplicates) and the perceptual hash of ``folds`` (near
duplicates), and works on the annotations' RLEs from the one rasteriser: each annotation's pixel area and box,
and the pairs of annotations whose masks overlap by IoU at least the threshold. With probabilities it also
scores the labels (:mod:`datatools.clean.label_issues`). Nothing it returns grows with the image size.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.clean.label_issues import LabelFacts, label_facts
from datatools.core.classes import ClassMap
from datatools.core.issues import Issue
from datatools.core.masks import OverlapPolicy, annotation_to_rle
from datatools.eda.stats import ImageJob, PixelStats, pixel_stats, read_checked, sharpness
from datatools.folds.phash import phash_variants

__all__ = ["ImageFacts", "ScanConfig", "image_fingerprint", "scan_image"]


@dataclass(frozen=True)
class ScanConfig:
    """What every worker needs, sent once.

    Attributes:
        root: image root.
        class_map: category id -> mask value.
        read_pixels: decode the images (duplicates and outlier images need them).
        iou: mask IoU at or above which two annotations are the same object.
        probs: folder of per-image probabilities, or ``None`` (no label scores).
        overlap: overlap policy of the label mask the probabilities are compared with.
        min_missing_px: smallest region, in pixels, reported as an object the labels miss.
    """

    root: str
    class_map: ClassMap
    read_pixels: bool = True
    iou: float = 0.9
    probs: str | None = None
    overlap: OverlapPolicy = field(default_factory=OverlapPolicy)
    min_missing_px: int = 64


@dataclass
class ImageFacts:
    """The facts of one image (small).

    Attributes:
        index: position of the image in the dataset.
        issue: the file's problem (missing, unreadable, wrong size), or ``None``.
        pixels: eda's pixel statistics, or ``None`` when not read.
        sharpness: variance of the Laplacian of the grey image (NaN when not read).
        digest: hex digest of the decoded pixels and their shape ('' when not read).
        phash: the perceptual hash of the image's eight flips/rotations (empty when not read).
        ann_area: each annotation's pixel area, in job order.
        ann_bbox_xywh: each annotation's mask box.
        pairs: ``(i, j, iou)`` with ``i < j`` positions in the job's annotations and IoU at least the threshold.
        labels: label scores, when probabilities were given.
    """

    index: int
    issue: Issue | None = None
    pixels: PixelStats | None = None
    sharpness: float = float("nan")
    digest: str = ""
    phash: tuple[int, ...] = ()
    ann_area: list[int] = field(default_factory=list)
    ann_bbox_xywh: list[tuple[float, float, float, float]] = field(default_factory=list)
    pairs: list[tuple[int, int, float]] = field(default_factory=list)
    labels: LabelFacts | None = None


def image_fingerprint(image: npt.NDArray[np.uint8]) -> tuple[str, tuple[int, ...], npt.NDArray[np.uint8]]:
    """``(digest of the pixels and shape, pHash of the 8 flips/rotations, grey image)`` of an RGB image.

    Example:
        >>> digest, hashes, gray = image_fingerprint(np.zeros((8, 8, 3), np.uint8))
        >>> len(hashes)
        8
    """
    h = hashlib.sha256(repr(image.shape).encode("ascii"))  # SHA-256 has CPU instructions: a third of blake2b's time
    h.update(np.ascontiguousarray(image).data)
    gray: npt.NDArray[np.uint8] = np.asarray(cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if image.ndim == 3 else image,
                                             dtype=np.uint8)
    return h.hexdigest(), tuple(int(v) for v in phash_variants(gray)), gray


def _pairs(rles: list[dict[str, Any]], threshold: float) -> list[tuple[int, int, float]]:
    if len(rles) < 2:
        return []
    iou = np.asarray(mask_utils.iou(rles, rles, [0] * len(rles)), dtype=np.float64)
    ii, jj = np.nonzero(np.triu(iou >= threshold, k=1))
    return [(int(i), int(j), float(iou[i, j])) for i, j in zip(ii.tolist(), jj.tolist(), strict=True)]


def scan_image(job: ImageJob, cfg: ScanConfig) -> ImageFacts:
    """Everything ``clean`` learns from one image, decoding it once.

    Args:
        job: the image's records (only annotations that can be rasterised).
        cfg: shared settings.

    Returns:
        Small per-image facts (see :class:`ImageFacts`).

    Example:
        >>> cm = ClassMap.from_categories([{"id": 1, "name": "a"}])
        >>> square = {"id": 1, "category_id": 1, "segmentation": [[0, 0, 4, 0, 4, 4, 0, 4]]}
        >>> facts = scan_image(ImageJob(0, 1, "a.png", 8, 8, [square, {**square, "id": 2}]),
        ...                    ScanConfig(".", cm, read_pixels=False))
        >>> facts.ann_area, facts.pairs
        ([16, 16], [(0, 1, 1.0)])
    """
    hw = (job.height, job.width)
    rles = [annotation_to_rle(a["segmentation"], *hw) for a in job.annotations]
    facts = ImageFacts(job.index)
    if rles:
        facts.ann_area = [int(v) for v in mask_utils.area(rles)]
        facts.ann_bbox_xywh = [(float(b[0]), float(b[1]), float(b[2]), float(b[3])) for b in mask_utils.toBbox(rles)]
        facts.pairs = _pairs(rles, cfg.iou)
    if cfg.read_pixels:
        image, facts.issue = read_checked(job, cfg.root)
        if image is not None:
            facts.pixels = pixel_stats(image)
            facts.digest, facts.phash, gray = image_fingerprint(image)
            facts.sharpness = sharpness(gray)
            del image, gray
    if cfg.probs is not None:
        facts.labels = label_facts(job, rles, cfg.class_map, cfg.probs, cfg.overlap, cfg.min_missing_px)
    return facts

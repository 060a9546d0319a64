"""Label issues from out-of-fold probabilities: per-image and per-annotation label-quality scores.

Probabilities come one file per image, found under ``--probs DIR`` by the image's ``file_name`` with its
extension replaced (sub-folders kept), in either of two forms:

- ``<file_name stem>.npy``: float16 or float32 ``(K + 1, H, W)`` softmax over background and the K classes at
  the image's size (channel ``v`` = mask value ``v``); memory-mapped, never read whole;
- ``<file_name stem>.npz`` as ``datatools train predict --save-probs`` writes it (``probs`` ``(K + 1, S, S)`` float16
  or uint8 ``round(p * 255)`` at the model's size, ``shape_hw``), resized to the image bilinearly. A predict
  output folder may be given as is: its ``probs/`` sub-folder is looked in too.

Scores follow cleanlab's segmentation module: a pixel's label quality is the probability the model gives to the
label it has (self-confidence), and an image's is cleanlab's softmin over its pixels
(``cleanlab.segmentation.rank``); pixels labelled ignore (255) take no part. An annotation's quality is the mean
self-confidence of its own class over its own pixels, so a polygon given another class, or drawn where there is
no object, scores low. Regions the model calls an object with confidence but the labels call background are
reported as missing objects (a deleted annotation).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.clean.findings import Finding
from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.core.issues import Severity
from datatools.core.masks import OverlapPolicy, rasterize_semantic
from datatools.eda.stats import ImageJob

__all__ = ["LabelFacts", "image_label_quality", "label_facts", "label_findings", "probs_path", "read_probs"]

#: Temperature of cleanlab's softmin (its default): low values let the worst pixels decide an image's score.
SOFTMIN_TEMPERATURE = 0.1
#: Pixels whose background probability is under this count toward a missing object.
MISSING_BACKGROUND_P = 0.5


def probs_path(folder: str | os.PathLike[str], file_name: str) -> Path | None:
    """The probability file of an image under ``folder`` (``.npy`` first, then ``.npz``; also under
    ``folder/probs``), or ``None`` when there is none.

    Example:
        >>> probs_path("oof/", "train/img1.jpg")  # oof/train/img1.npy if it exists
    """
    stem = str(PurePosixPath(file_name).with_suffix(""))
    for base in (Path(folder), Path(folder) / "probs"):
        for ext in (".npy", ".npz"):
            path = base / (stem + ext)
            if path.is_file():
                return path
    return None


def read_probs(path: str | os.PathLike[str], hw: tuple[int, int], channels: int) -> npt.NDArray[np.float32]:
    """One image's probabilities as float32 ``(channels, H, W)`` at the image's size.

    Raises:
        UnreadableFileError: the file cannot be read.
        InvalidDatasetError: wrong number of channels, or a ``.npy`` of another size than the image.
    """
    path = Path(path)
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as data:
                stored = data["probs"]
            probs = stored.astype(np.float32) / 255.0 if stored.dtype == np.uint8 else stored.astype(np.float32)
            if probs.ndim == 3 and probs.shape[1:] != hw:
                size = (hw[1], hw[0])
                probs = np.stack([cv2.resize(p, size, interpolation=cv2.INTER_LINEAR) for p in probs])
        else:
            mapped = np.load(path, mmap_mode="r", allow_pickle=False)
            if mapped.ndim != 3 or mapped.shape[1:] != hw:
                raise InvalidDatasetError(f"{path}: probabilities of shape {tuple(mapped.shape)}, expected "
                                          f"({channels}, {hw[0]}, {hw[1]}) for its image")
            probs = np.asarray(mapped, dtype=np.float32)
    except (OSError, ValueError, KeyError) as exc:
        if isinstance(exc, InvalidDatasetError):
            raise
        raise UnreadableFileError(f"{path}: cannot be read as probabilities ({exc})") from None
    if probs.ndim != 3 or probs.shape[0] != channels:
        raise InvalidDatasetError(f"{path}: {probs.shape[0] if probs.ndim == 3 else '?'} probability channels, "
                                  f"expected {channels} (background + {channels - 1} classes)")
    return probs


@dataclass
class LabelFacts:
    """Label-quality scores of one image (1 = the model agrees everywhere, 0 = nowhere).

    Attributes:
        image_quality: cleanlab's softmin of the pixels' self-confidence (ignore pixels left out).
        ann_quality: each annotation's mean self-confidence of its class over its pixels (NaN: no pixel left).
        missing: ``(pixels, mean object probability, x, y, w, h, value)`` of each region the model sees as an
            object of class ``value`` where the labels say background.
    """

    image_quality: float
    ann_quality: list[float] = field(default_factory=list)
    missing: list[tuple[int, float, int, int, int, int, int]] = field(default_factory=list)


def image_label_quality(labels: npt.NDArray[np.intp], probs: npt.NDArray[np.float32]) -> float:
    """cleanlab's softmin label quality of one image's labelled pixels, through its public API.

    ``cleanlab.segmentation.rank.get_label_quality_scores`` scores every pixel of an (H, W) image; the pixels that
    take part (ignore pixels left out) are handed to it as one 1 x P image, which gives the same softmin.

    Args:
        labels: (P,) mask values of the pixels that take part.
        probs: (K + 1, P) their probabilities.

    Example:
        >>> round(image_label_quality(np.array([0, 1]), np.array([[0.9, 0.5], [0.1, 0.5]], np.float32)), 3)
        0.507
    """
    from cleanlab.segmentation.rank import get_label_quality_scores

    scores, _ = get_label_quality_scores(labels[None, None, :], probs[None, :, None, :], method="softmin",
                                         temperature=SOFTMIN_TEMPERATURE, verbose=False)
    return float(scores[0])


def label_facts(job: ImageJob, rles: list[dict[str, Any]], class_map: ClassMap, folder: str, overlap: OverlapPolicy,
                min_missing_px: int) -> LabelFacts:
    """Score one image's labels against its probabilities (a worker of the scan).

    Raises:
        InvalidDatasetError, UnreadableFileError: no probability file for the image, or a broken one.
    """
    path = probs_path(folder, job.file_name)
    if path is None:
        raise InvalidDatasetError(f"{folder}: no probabilities for image {job.file_name!r}")
    hw = (job.height, job.width)
    probs = read_probs(path, hw, len(class_map) + 1)
    labels = rasterize_semantic(job.annotations, *hw, class_map, overlap, ignore=job.ignore)
    valid = labels != IGNORE_INDEX
    given = np.where(valid, labels, 0).astype(np.intp)
    image_quality = image_label_quality(given[valid], probs[:, valid]) if valid.any() else 1.0
    ann_quality = []
    for ann, rle in zip(job.annotations, rles, strict=True):
        m = mask_utils.decode(rle).astype(bool) & valid
        value = class_map.value_of(ann["category_id"])
        ann_quality.append(float(probs[value][m].mean()) if m.any() else float("nan"))
    unlabelled = (labels == 0) & (probs[0] < MISSING_BACKGROUND_P)
    missing = []
    if unlabelled.any():
        count, comp, stats, _ = cv2.connectedComponentsWithStats(unlabelled.astype(np.uint8), connectivity=8)
        for c in range(1, count):
            x, y, w, h, px = (int(v) for v in stats[c])
            if px < min_missing_px:
                continue
            region = comp[y:y + h, x:x + w] == c
            object_p = 1.0 - probs[0, y:y + h, x:x + w][region]
            value = int(np.argmax(probs[1:, y:y + h, x:x + w][:, region].mean(axis=1))) + 1
            missing.append((px, float(object_p.mean()), x, y, w, h, value))
    return LabelFacts(image_quality, ann_quality, missing)


def label_findings(
    images: list[dict[str, Any]],
    annotations: list[list[dict[str, Any]]],
    facts: list[LabelFacts | None],
    labels: list[str],
    class_map: ClassMap,
    threshold: float,
) -> tuple[list[Finding], dict[str, list[Any]]]:
    """Findings for annotations whose label quality is under ``threshold`` and for missing objects, plus the
    score table (one row per image and per annotation).

    Args:
        images: the image records, by position.
        annotations: each image's scanned annotations, by position.
        facts: each image's label facts (``None``: not scored).
        labels: class display names, by mask value - 1.
        class_map: category id -> mask value.
        threshold: annotations with a quality below it are findings.

    Example:
        >>> found, table = label_findings(ds.images, anns, [f.labels for f in facts], names, cm, 0.5)
    """
    found: list[Finding] = []
    table: dict[str, list[Any]] = {"level": [], "image_id": [], "annotation_id": [], "quality": []}
    for index, (img, anns, lf) in enumerate(zip(images, annotations, facts, strict=True)):
        if lf is None:
            continue
        table["level"].append("image")
        table["image_id"].append(img["id"])
        table["annotation_id"].append(None)
        table["quality"].append(round(lf.image_quality, 6))
        for ann, quality in zip(anns, lf.ann_quality, strict=True):
            table["level"].append("annotation")
            table["image_id"].append(img["id"])
            table["annotation_id"].append(ann["id"])
            table["quality"].append(None if quality != quality else round(quality, 6))
            if quality == quality and quality < threshold:
                name = labels[class_map.value_of(ann["category_id"]) - 1]
                found.append(Finding("label-issue", "low-self-confidence", Severity.WARNING, 1.0 - quality, img["id"],
                                     str(img["file_name"]), f"annotation id {ann['id']} ({name}): the model gives "
                                     f"its class {quality:.2f} on average over its pixels", (ann["id"],),
                                     image_index=index))
        for px, object_p, x, y, w, h, value in lf.missing:
            found.append(Finding("label-missing", "unlabelled-object", Severity.WARNING, object_p, img["id"],
                                 str(img["file_name"]), f"{px} px at x={x}, y={y}, {w}x{h} labelled background; the "
                                 f"model sees {labels[value - 1]} there (object probability {object_p:.2f})",
                                 image_index=index, extra={"box_xywh": (x, y, w, h)}))
    return found, table

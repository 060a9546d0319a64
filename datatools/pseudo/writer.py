"""Pseudo labels to COCO records, and the records to a new dataset folder.

One annotation per connected component and class (compressed RLE), the ignore region as one RLE under
``images[].datatools.ignore``, provenance per image. :class:`DatasetWriter` streams: images are copied (or
hard-linked) as their labels arrive, the records stay small, and the folder appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.core.atomic import atomic_write_json, output_dir
from datatools.core.classes import IGNORE_INDEX
from datatools.core.coco import write_coco_json
from datatools.core.dataset import ANNOTATIONS_FILE, IMAGES_DIR, Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.masks import mask_to_rle

from .rule import components

__all__ = ["DatasetWriter", "ImageLabels", "labels_from_multiclass", "labels_from_multilabel", "rle_annotation"]


@dataclass
class ImageLabels:
    """One image's pseudo labels, ready to write.

    Attributes:
        annotations: ``category_id``, ``segmentation`` (RLE), ``area``, ``bbox``, ``iscrowd`` (no ids yet).
        ignore: the ignore region as one RLE, or None when nothing is ignored.
        confident_share: share of the image's pixels that are not ignored.
        class_pixels: per output channel (class), in order: ``[predicted pixels, labelled pixels]``.
        files: extra provenance of this image (e.g. sha256 of the probability files it came from).
    """

    annotations: list[dict[str, Any]]
    ignore: dict[str, Any] | None
    confident_share: float
    class_pixels: list[list[int]] = field(default_factory=list)
    files: list[dict[str, str]] = field(default_factory=list)


def rle_annotation(category_id: int, rle: dict[str, Any]) -> dict[str, Any]:
    """A COCO annotation (without ids) for a compressed RLE whose ``counts`` is a str."""
    coded = {"size": rle["size"], "counts": rle["counts"].encode("ascii")}
    bbox = [float(v) for v in mask_utils.toBbox(coded).tolist()]
    return {"category_id": category_id, "segmentation": rle, "area": int(mask_utils.area(coded)), "bbox": bbox,
            "iscrowd": 0}


def _component_annotations(mask: npt.NDArray[np.bool_], category_id: int) -> list[dict[str, Any]]:
    return [rle_annotation(category_id, mask_to_rle(c)) for c in components(mask)]


def labels_from_multiclass(labels: npt.NDArray[np.uint8], argmax: npt.NDArray[Any] | None, category_ids: Sequence[int],
                           names: Sequence[str]) -> ImageLabels:
    """Records of a multiclass decision (:func:`~datatools.pseudo.rule.decide_multiclass`).

    Args:
        labels: (H, W) uint8, 0 background, 1..K, 255 ignore.
        argmax: (H, W) the arg-max class before thresholds (for the summary), or None.
        category_ids: the category id of values 1..K.
        names: the channel names (background first), for the summary.
    """
    anns: list[dict[str, Any]] = []
    for value, cat in enumerate(category_ids, start=1):
        anns += _component_annotations(labels == value, cat)
    ignore = labels == IGNORE_INDEX
    counts = np.bincount(labels.ravel(), minlength=256)
    predicted = np.bincount(argmax.ravel(), minlength=len(names)) if argmax is not None else counts
    pixels = [[int(predicted[v]), int(counts[v])] for v in range(len(names))]
    return ImageLabels(anns, mask_to_rle(ignore) if ignore.any() else None, 1.0 - float(ignore.mean()), pixels)


def labels_from_multilabel(positive: npt.NDArray[np.bool_], ignore: npt.NDArray[np.bool_],
                           predicted: npt.NDArray[np.bool_] | None, category_ids: Sequence[int],
                           names: Sequence[str]) -> ImageLabels:
    """Records of a multilabel decision (:func:`~datatools.pseudo.rule.decide_multilabel`).

    Args:
        positive: (K, H, W) bool.
        ignore: (H, W) bool.
        predicted: (K, H, W) ``p >= 0.5`` (for the summary), or None.
        category_ids: the category id of each plane.
        names: the plane names.
    """
    anns: list[dict[str, Any]] = []
    pixels = []
    for k, cat in enumerate(category_ids):
        anns += _component_annotations(positive[k], cat)
        pred = int(predicted[k].sum()) if predicted is not None else int(positive[k].sum())
        pixels.append([pred, int(positive[k].sum())])
    return ImageLabels(anns, mask_to_rle(ignore) if ignore.any() else None, 1.0 - float(ignore.mean()), pixels)


def _place(src: Path, dst: Path, link: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        with contextlib.suppress(OSError):  # another file system, or links not allowed: copy instead
            os.link(src, dst)
            return
    shutil.copyfile(src, dst)


class DatasetWriter:
    """Writes a pseudo-labelled dataset (optionally merged after a labelled one) into a staging folder.

    Example:
        >>> with DatasetWriter("pseudo/", categories) as w:
        ...     w.add(image_record, image_path, labels, provenance)
        ...     w.finish(summary)
    """

    def __init__(self, out: str | os.PathLike[str], categories: list[dict[str, Any]], *, overwrite: bool = False,
                 link: bool = False, merge_with: Dataset | None = None, coco_extra: dict[str, Any] | None = None
                 ) -> None:
        self.out, self.overwrite, self.link = Path(out), overwrite, link
        self.merge_with = merge_with
        self.coco: dict[str, Any] = {**(coco_extra or {}), "images": [], "annotations": [],
                                     "categories": categories}
        self._next_image = self._next_ann = 1
        self.added = 0
        self._prefix = PurePosixPath()
        self._ctx: Any = None
        self.tmp = Path()

    def __enter__(self) -> DatasetWriter:
        self._ctx = output_dir(self.out, self.overwrite)
        self.tmp = self._ctx.__enter__()
        if self.merge_with is not None:
            self._merge_labelled(self.merge_with)
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self._ctx.__exit__(*exc)

    def _merge_labelled(self, ds: Dataset) -> None:
        for img in ds.images:
            _place(ds.image_path(img), self.tmp / IMAGES_DIR / img["file_name"], self.link)
        self.coco = {**ds.coco, "images": list(ds.images), "annotations": list(ds.annotations),
                     "categories": self.coco["categories"]}
        self._next_image = max((int(i["id"]) for i in ds.images), default=0) + 1
        self._next_ann = max((int(a["id"]) for a in ds.annotations), default=0) + 1
        names = {i["file_name"] for i in ds.images}
        self._prefix = PurePosixPath("pseudo")
        while any(n.startswith(str(self._prefix) + "/") for n in names):
            self._prefix = PurePosixPath(f"_{self._prefix}")

    def add(self, image: dict[str, Any], path: Path, labels: ImageLabels, provenance: dict[str, Any]) -> None:
        """Copy one image and append its records.

        Args:
            image: the source record (``id``, ``file_name``, ``height``, ``width`` and any other fields).
            path: the image file.
            labels: its pseudo labels.
            provenance: ``images[].datatools`` without ``ignore`` (added here).
        """
        file_name = str(self._prefix / image["file_name"]) if self.merge_with is not None else image["file_name"]
        _place(path, self.tmp / IMAGES_DIR / file_name, self.link)
        image_id = self._next_image if self.merge_with is not None or image.get("id") is None else image["id"]
        self._next_image = max(self._next_image, int(image_id)) + 1
        info = dict(provenance)
        if labels.ignore is not None:
            info["ignore"] = [labels.ignore]
        record = {**image, "id": image_id, "file_name": file_name, "datatools": info}
        self.coco["images"].append(record)
        self.added += 1
        for ann in labels.annotations:
            self.coco["annotations"].append({"id": self._next_ann, "image_id": image_id, **ann})
            self._next_ann += 1

    def finish(self, summary: dict[str, Any]) -> None:
        """Write ``annotations.json`` and ``summary.json`` into the staging folder."""
        if not self.added:
            raise InvalidDatasetError("every image was skipped by --min-confident; nothing to write")
        write_coco_json(self.tmp / ANNOTATIONS_FILE, self.coco)
        atomic_write_json(self.tmp / "summary.json", summary, indent=2)


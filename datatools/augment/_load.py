"""Reading source images as :class:`Sample` objects: pixels through the one image reader, one mask per object
through the one rasteriser.

Each annotation goes through ``annotation_to_rle``; its box is read from the RLE and only the mask inside the box
is decoded (from the RLE's run lengths, ``core.rle_counts.rle_crop``) and copied into its plane (the rest stays
zero); the boxes travel with the sample. A per-process cache keeps each object's box crop, so an image used by
several outputs (mosaic tiles, copy-paste donors) is rasterised once per worker.

Copy-paste donors give only their objects: :func:`load_donor` keeps the pixels around each wanted object's box
(:data:`DONOR_MARGIN`) in a per-process cache too, so a donor object pasted again, as rare objects are, costs no
file read or decode at all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.augment.types import BoxedObjects, ObjectRecord, Sample, empty_masks
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.imageio import read_image
from datatools.core.masks import annotation_to_rle
from datatools.core.rle_counts import rle_crop

__all__ = ["DONOR_MARGIN", "boxed_objects", "clear_crops", "donor_cache_entries", "image_record",
           "install_cache_entries", "load_donor", "load_sample", "object_entry", "object_record", "wanted_annotations",
           "with_objects"]

#: Pixels around an object's box that a copy-paste kernel may read (its warp looks 2 pixels beyond the box).
DONOR_MARGIN = 2


def load_sample(ds: Dataset, image_id: Any, ann_ids: Sequence[Any] | None = None, *, objects: bool = True,
                window_yxyx: tuple[int, int, int, int] | None = None, order: str = "rgb") -> Sample:
    """Read one image and rasterise its annotations (or only ``ann_ids``), one mask per object.

    Args:
        ds: the dataset.
        image_id: the image.
        ann_ids: the annotations to rasterise (default: all of the image's).
        objects: False reads the image only (a Sample without objects).
        window_yxyx: rasterise only the objects whose box meets this window (the others cannot be seen).
        order: channel order of the pixels, ``"rgb"`` or ``"bgr"`` (see ``AugmentOp.needs_rgb``).

    Raises:
        UnreadableFileError: the image cannot be read.
        InvalidDatasetError: the image's size disagrees with its record.

    Example:
        >>> sample = load_sample(ds, ds.images[0]["id"])
    """
    record = image_record(ds, image_id)
    path = ds.image_path(record)
    image = read_image(path, mode=order)
    h, w = int(record["height"]), int(record["width"])
    if image.shape[:2] != (h, w):
        raise InvalidDatasetError(f"{path}: image is {image.shape[1]}x{image.shape[0]} but its record says {w}x{h}")
    sample = Sample(image, empty_masks(0, h, w), (), image_id, ())
    return with_objects(ds, sample, ann_ids, window_yxyx) if objects else sample


def with_objects(ds: Dataset, sample: Sample, ann_ids: Sequence[Any] | None = None,
                 window_yxyx: tuple[int, int, int, int] | None = None) -> Sample:
    """``sample`` (an image read by :func:`load_sample`) with its annotations rasterised, one mask per object
    (:func:`boxed_objects` pasted into (H, W) planes)."""
    boxed = boxed_objects(ds, sample.image_id, sample.size_hw, ann_ids, window_yxyx)
    return Sample(sample.image, boxed.to_masks(sample.size_hw), boxed.objects, sample.image_id, boxed.boxes_yxyx)


def boxed_objects(ds: Dataset, image_id: Any, size_hw: tuple[int, int], ann_ids: Sequence[Any] | None = None,
                  window_yxyx: tuple[int, int, int, int] | None = None) -> BoxedObjects:
    """The image's annotations (or only ``ann_ids``; only those whose box meets ``window_yxyx``) rasterised, each
    as its box and the mask inside it.

    Each annotation goes through the one rasteriser (``annotation_to_rle``); its box is read from the RLE and its
    crop decoded from the RLE's run lengths over that box only (``core.rle_counts.rle_crop``). Crops are cached per
    process (see ``clear_crops``).
    """
    h, w = size_hw
    objects, boxes, crops = [], [], []
    for ann in wanted_annotations(ds, image_id, ann_ids):
        box, rle, crop = object_entry(ann, h, w)
        if window_yxyx is not None and (box is None or not _meets(box, window_yxyx)):
            continue
        if crop is None and box is not None:
            crop = rle_crop(rle, box)
            _cache_crop(ann.get("id"), (box, rle, crop))
        objects.append(object_record(ann, image_id))
        boxes.append(box)
        crops.append(crop)
    return BoxedObjects(tuple(objects), tuple(boxes), tuple(crops))


def wanted_annotations(ds: Dataset, image_id: Any, ann_ids: Sequence[Any] | None) -> list[dict[str, Any]]:
    """The image's annotations (only ``ann_ids`` when given), in file order."""
    anns = ds.annotations_of(image_id)
    if ann_ids is None:
        return list(anns)
    wanted = set(ann_ids)
    return [a for a in anns if a["id"] in wanted]


def object_record(ann: dict[str, Any], image_id: Any) -> ObjectRecord:
    """The :class:`ObjectRecord` of one annotation of ``image_id``."""
    return ObjectRecord(int(ann["category_id"]), int(ann.get("iscrowd", 0)), image_id, ann.get("id"))


#: per process, annotation id -> (box, RLE, the mask inside the box or None until needed); an image used by several
#: outputs (mosaic tiles, copy-paste donors) is rasterised once. Cleared at the start and end of every run; the
#: crops are bounded in bytes.
_CROPS: dict[Any, tuple[tuple[int, int, int, int] | None, dict[str, Any], npt.NDArray[np.bool_] | None]] = {}
_CROP_BUDGET = 256 * 2**20
_crop_bytes = 0


#: per process, (annotation id, channel order) -> (y0, x0) of the patch and the pixels around the object's box.
_PATCHES: dict[tuple[Any, str], tuple[tuple[int, int], npt.NDArray[np.uint8]]] = {}
_PATCH_BUDGET = 256 * 2**20
_patch_bytes = 0


def clear_crops() -> None:
    global _crop_bytes, _patch_bytes
    _CROPS.clear()
    _PATCHES.clear()
    _crop_bytes = _patch_bytes = 0


def _margin_box(box: tuple[int, int, int, int], h: int, w: int) -> tuple[int, int, int, int]:
    y0, x0, y1, x1 = box
    m = DONOR_MARGIN
    return max(0, y0 - m), max(0, x0 - m), min(h, y1 + m), min(w, x1 + m)


def _cache_crop(key: Any, entry: tuple[Any, dict[str, Any], npt.NDArray[np.bool_]]) -> None:
    """Keep an object's decoded crop (unless it already is, or the budget is spent)."""
    global _crop_bytes
    old = _CROPS.get(key)
    if key is None or (old is not None and old[2] is not None) or _crop_bytes + entry[2].nbytes > _CROP_BUDGET:
        return
    _CROPS[key] = entry
    _crop_bytes += entry[2].nbytes


def _cache_patch(key: tuple[Any, str], entry: tuple[tuple[int, int], npt.NDArray[np.uint8]]) -> None:
    global _patch_bytes
    if key not in _PATCHES and _patch_bytes + entry[1].nbytes <= _PATCH_BUDGET:
        _PATCHES[key] = entry
        _patch_bytes += entry[1].nbytes


def _patches(sample: Sample, order: str) -> list[tuple[tuple[Any, str], tuple[tuple[int, int], npt.NDArray[np.uint8]]]]:
    """``((annotation id, order), ((y0, x0), pixels))`` around each object of a sample read in full."""
    h, w = sample.size_hw
    out = []
    for obj, box in zip(sample.objects, sample.boxes_yxyx, strict=True):
        if obj.source_annotation_id is None or box is None:
            continue
        y0, x0, y1, x1 = _margin_box(box, h, w)
        out.append(((obj.source_annotation_id, order), ((y0, x0), sample.image[y0:y1, x0:x1].copy())))
    return out


def load_donor(ds: Dataset, image_id: Any, ann_ids: Sequence[Any], order: str = "rgb") -> Sample:
    """The objects ``ann_ids`` of one image, for pasting elsewhere: a :class:`Sample` whose pixels are those of
    the image within :data:`DONOR_MARGIN` of each object's box (zero elsewhere, never read there), or the whole
    image when it had to be read.

    The pixels are cached per object, so a donor object used again is not read from disk again.

    Raises:
        UnreadableFileError: the image cannot be read.
        InvalidDatasetError: the image's size disagrees with its record.

    Example:
        >>> donor = load_donor(ds, image_id, [ann_id])
    """
    record = image_record(ds, image_id)
    h, w = int(record["height"]), int(record["width"])
    image = np.zeros((h, w, 3), dtype=np.uint8)  # only the patches are written, and only they are read
    sample = with_objects(ds, Sample(image, empty_masks(0, h, w), (), image_id, ()), ann_ids)
    keys = [(obj.source_annotation_id, order) for obj, box in zip(sample.objects, sample.boxes_yxyx, strict=True)
            if box is not None]
    if any(k[0] is None or k not in _PATCHES for k in keys):
        full = dataclasses.replace(sample, image=load_sample(ds, image_id, objects=False, order=order).image)
        for key, entry in _patches(full, order):
            _cache_patch(key, entry)
        return full
    for key in keys:
        (y0, x0), patch = _PATCHES[key]
        image[y0:y0 + patch.shape[0], x0:x0 + patch.shape[1]] = patch
    return sample


def donor_cache_entries(ds: Dataset, image_id: Any, ann_ids: Sequence[Any], order: str = "rgb") -> list[Any]:
    """What :func:`load_donor` would cache for these objects of one image (their mask crops and pixel patches),
    for :func:`install_cache_entries`: a run reads each reused donor once, before its workers are forked, instead
    of once per worker.

    Example:
        >>> install_cache_entries(donor_cache_entries(ds, image_id, [ann_id], "bgr"))
    """
    sample = with_objects(ds, load_sample(ds, image_id, objects=False, order=order), ann_ids)
    crops = [(key, _CROPS[key]) for key in (obj.source_annotation_id for obj in sample.objects)
             if key is not None and key in _CROPS]
    return [crops, _patches(sample, order)]


def install_cache_entries(entries: Sequence[Any]) -> None:
    """Put entries from :func:`donor_cache_entries` into this process's caches (within their byte budgets)."""
    crops, patches = entries
    for key, entry in crops:
        if entry[2] is not None:
            _cache_crop(key, entry)
    for key, entry in patches:
        _cache_patch(key, entry)


def object_entry(ann: dict[str, Any], h: int, w: int) -> tuple[tuple[int, int, int, int] | None, dict[str, Any],
                                                                  npt.NDArray[np.bool_] | None]:
    """``(box, RLE, cached crop or None)`` of one annotation: the RLE from the one rasteriser, the box from the
    RLE; nothing is decoded here."""
    key = ann.get("id")
    cached = _CROPS.get(key)
    if cached is not None:
        return cached
    rle = annotation_to_rle(ann["segmentation"], h, w)
    x, y, bw, bh = (int(v) for v in mask_utils.toBbox(rle))
    entry = ((y, x, y + bh, x + bw) if bw and bh else None), rle, None
    if key is not None:
        _CROPS[key] = entry
    return entry


def _meets(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def image_record(ds: Dataset, image_id: Any) -> dict[str, Any]:
    """The image record with this id (an index is built once per dataset, as ``annotations_of`` does)."""
    index = ds.__dict__.get("_augment_by_id")
    if index is None:
        index = {img["id"]: img for img in ds.images}
        ds.__dict__["_augment_by_id"] = index
    return index[image_id]  # type: ignore[no-any-return]

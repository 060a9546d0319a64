"""Reading source images as :class:`Sample` objects: pixels through the one image reader, one mask per object
through the one rasteriser.

Each annotation goes through ``annotation_to_rle`` and is decoded by pycocotools; only the object's box is copied
into its plane (the rest stays zero) and the boxes, read from the RLE, travel with the sample. A per-process cache
keeps each object's box crop, so an image used by several outputs (mosaic tiles, copy-paste donors) is rasterised
once per worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from pycocotools import mask as mask_utils

from datatools.augment.types import ObjectRecord, Sample, empty_masks
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.imageio import read_image
from datatools.core.masks import annotation_to_rle

__all__ = ["clear_crops", "image_record", "load_sample", "with_objects"]


def load_sample(ds: Dataset, image_id: Any, ann_ids: Sequence[Any] | None = None, *, objects: bool = True,
                window_yxyx: tuple[int, int, int, int] | None = None) -> Sample:
    """Read one image and rasterise its annotations (or only ``ann_ids``), one mask per object.

    Args:
        ds: the dataset.
        image_id: the image.
        ann_ids: the annotations to rasterise (default: all of the image's).
        objects: False reads the image only (a Sample without objects).
        window_yxyx: rasterise only the objects whose box meets this window (the others cannot be seen).

    Raises:
        UnreadableFileError: the image cannot be read.
        InvalidDatasetError: the image's size disagrees with its record.

    Example:
        >>> sample = load_sample(ds, ds.images[0]["id"])
    """
    record = image_record(ds, image_id)
    path = ds.image_path(record)
    image = read_image(path)
    h, w = int(record["height"]), int(record["width"])
    if image.shape[:2] != (h, w):
        raise InvalidDatasetError(f"{path}: image is {image.shape[1]}x{image.shape[0]} but its record says {w}x{h}")
    sample = Sample(image, empty_masks(0, h, w), (), image_id, ())
    return with_objects(ds, sample, ann_ids, window_yxyx) if objects else sample


def with_objects(ds: Dataset, sample: Sample, ann_ids: Sequence[Any] | None = None,
                 window_yxyx: tuple[int, int, int, int] | None = None) -> Sample:
    """``sample`` (an image read by :func:`load_sample`) with its annotations rasterised, one mask per object.

    Each annotation goes through the one rasteriser (``annotation_to_rle``, decoded by pycocotools); only the
    object's box is copied into its plane (the rest is zero), and the boxes, read from the RLE, come along.
    """
    h, w = sample.size_hw
    anns = ds.annotations_of(sample.image_id)
    if ann_ids is not None:
        wanted = set(ann_ids)
        anns = [a for a in anns if a["id"] in wanted]
    kept = []
    for ann in anns:
        box, crop = _object_crop(ann, h, w, window_yxyx)
        if window_yxyx is None or (box is not None and _meets(box, window_yxyx)):
            kept.append((ann, box, crop))
    masks = empty_masks(len(kept), h, w)
    for i, (_, box, crop) in enumerate(kept):
        if box is not None:
            masks[i, box[0]:box[2], box[1]:box[3]] = crop
    objects = tuple(ObjectRecord(int(a["category_id"]), int(a.get("iscrowd", 0)), sample.image_id, a.get("id"))
                    for a, _, _ in kept)
    return Sample(sample.image, masks, objects, sample.image_id, tuple(box for _, box, _ in kept))


#: per process, annotation id -> (box, RLE, the mask inside the box or None until needed); an image used by several
#: outputs (mosaic tiles, copy-paste donors) is rasterised once. Cleared at the start and end of every run; the
#: crops are bounded in bytes.
_CROPS: dict[Any, tuple[tuple[int, int, int, int] | None, dict[str, Any], npt.NDArray[np.bool_] | None]] = {}
_CROP_BUDGET = 256 * 2**20
_crop_bytes = 0


def clear_crops() -> None:
    global _crop_bytes
    _CROPS.clear()
    _crop_bytes = 0


def _object_crop(ann: dict[str, Any], h: int, w: int, window_yxyx: tuple[int, int, int, int] | None
                 ) -> tuple[tuple[int, int, int, int] | None, npt.NDArray[np.bool_] | None]:
    """``(box, mask inside the box)`` of one annotation through the one rasteriser; the crop is only made when
    the box meets ``window_yxyx`` (or there is no window)."""
    global _crop_bytes
    key = ann.get("id")
    cached = _CROPS.get(key)
    if cached is not None:
        box, rle, crop = cached
    else:
        rle = annotation_to_rle(ann["segmentation"], h, w)
        x, y, bw, bh = (int(v) for v in mask_utils.toBbox(rle))
        box, crop = ((y, x, y + bh, x + bw) if bw and bh else None), None
    if crop is None and box is not None and (window_yxyx is None or _meets(box, window_yxyx)):
        crop = mask_utils.decode(rle)[box[0]:box[2], box[1]:box[3]].view(bool).copy()
    if key is not None and (cached is None or cached[2] is not crop):
        room = crop is not None and _crop_bytes + crop.nbytes <= _CROP_BUDGET
        _CROPS[key] = (box, rle, crop if room else None)
        _crop_bytes += crop.nbytes if room and crop is not None else 0
    return box, crop


def _meets(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def image_record(ds: Dataset, image_id: Any) -> dict[str, Any]:
    """The image record with this id (an index is built once per dataset, as ``annotations_of`` does)."""
    index = ds.__dict__.get("_augment_by_id")
    if index is None:
        index = {img["id"]: img for img in ds.images}
        ds.__dict__["_augment_by_id"] = index
    return index[image_id]  # type: ignore[no-any-return]

"""The dataset an augment run writes: new image and annotation records with fresh ids and provenance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError

__all__ = ["assemble_coco"]

_OWN_ANN_KEYS = {"id", "image_id", "category_id", "segmentation", "area", "bbox", "iscrowd", "datatools"}
_OWN_IMG_KEYS = {"id", "file_name", "width", "height", "datatools"}


def _next_id(records: Sequence[Mapping[str, Any]]) -> int:
    return max((int(r["id"]) for r in records if isinstance(r.get("id"), int)), default=0) + 1


def assemble_coco(ds: Dataset, src: Dataset, results: list[dict[str, Any]], op: str, merge: bool) -> dict[str, Any]:
    """The output COCO dict: source records (with ``merge``) and the new ones with fresh ids and provenance.

    Args:
        ds: the dataset the op read (its top-level fields and id ranges are kept).
        src: the source images (a fold's training images, or ``ds``).
        results: per output, its file name, size, sources, params, seed and annotations.
        op: the op's name, recorded in ``images[].datatools.op``.
        merge: put the source records first.

    Raises:
        InvalidDatasetError: with ``merge``, an output named like a source image.
    """
    image_id, ann_id = _next_id(ds.images), _next_id(ds.annotations)
    by_img = {img["id"]: img for img in src.images}
    by_ann = {a["id"]: a for a in src.annotations}
    taken = {str(img["file_name"]) for img in src.images} if merge else set()
    images, annotations = [], []
    for r in results:
        if r["file_name"] in taken:
            raise InvalidDatasetError(f"{src.source}: a source image is already named {r['file_name']!r}; "
                                      "write without --merge or rename it")
        first = by_img[r["sources"][0]]
        extra = {k: v for k, v in first.items() if k not in _OWN_IMG_KEYS}
        images.append({"id": image_id, "file_name": r["file_name"], "width": r["width"], "height": r["height"],
                       **extra, "datatools": {"op": op, "sources": r["sources"], "params": r["params"],
                                              "seed": r["seed"]}})
        for a in r["annotations"]:
            origin = by_ann.get(a["datatools"]["source_annotation_id"], {})
            extra = {k: v for k, v in origin.items() if k not in _OWN_ANN_KEYS}
            annotations.append({"id": ann_id, "image_id": image_id, **a, **extra})
            ann_id += 1
        image_id += 1
    if merge:
        images = [*src.images, *images]
        annotations = [*src.annotations, *annotations]
    return {**ds.coco, "images": images, "annotations": annotations}

"""``clean --apply``: a new dataset without what the chosen kinds of findings name, and the list of what changed.

Image-level findings drop their image (and its annotations); annotation-level findings drop their annotations
or, with ``as_ignore``, turn them into ignore regions (``images[].datatools.ignore``, RLE) so the pixels keep
no wrong label and are left out of the loss. Annotations that cannot be rasterised are always dropped. The input
dict is not changed: the new one is built from copies of the records kept.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from datatools.clean.findings import KINDS, Finding, Level
from datatools.core.masks import annotation_to_rle

__all__ = ["Applied", "apply_findings", "matches"]


def matches(finding: Finding, drop: Iterable[str]) -> bool:
    """Whether ``--drop`` names this finding, by its kind or its code."""
    names = set(drop)
    return finding.kind in names or finding.code in names


@dataclass
class Applied:
    """The cleaned COCO dict and what changed.

    Attributes:
        coco: the new COCO dict (every other field kept).
        removed: one entry per dropped or changed record, in file order: ``record`` (image | annotation),
            ``id``, ``image_id``, ``file_name`` (images), ``action`` (dropped | ignored), ``kinds``, ``reasons``.
        kept_images: positions of the images kept, in file order.
    """

    coco: dict[str, Any]
    removed: list[dict[str, Any]] = field(default_factory=list)
    kept_images: list[int] = field(default_factory=list)


def _json_rle(ann: dict[str, Any], height: int, width: int) -> dict[str, Any]:
    rle = dict(annotation_to_rle(ann["segmentation"], height, width))
    counts = rle["counts"]
    rle["counts"] = counts.decode("ascii") if isinstance(counts, bytes) else counts
    rle["size"] = [int(v) for v in rle["size"]]
    return rle


def apply_findings(coco: dict[str, Any], findings: Sequence[Finding], drop: Iterable[str],
                   as_ignore: bool = False) -> Applied:
    """Build the cleaned dataset.

    Args:
        coco: the input COCO dict (not modified).
        findings: every finding (``image_index`` = position in ``coco["images"]``).
        drop: the kinds or codes to act on.
        as_ignore: annotations become ignore regions instead of being deleted.

    Returns:
        The new dict and the list of what was dropped or changed, and why.

    Example:
        >>> applied = apply_findings(coco, found, ["duplicate-exact", "invalid-annotation"])
        >>> len(applied.coco["images"]) <= len(coco["images"])
        True
    """
    drop = list(drop)
    image_why: dict[int, list[Finding]] = {}
    ann_why: dict[Any, list[Finding]] = {}  # ("index", k) or ("id", annotation id)
    for f in findings:
        if not matches(f, drop):
            continue
        level = KINDS[f.kind].level
        if level is Level.IMAGE and f.image_index >= 0:
            image_why.setdefault(f.image_index, []).append(f)
        elif level is Level.ANNOTATION:
            if "ann_index" in f.extra:
                ann_why.setdefault(("index", f.extra["ann_index"]), []).append(f)
            else:
                for ann_id in f.annotation_ids:
                    ann_why.setdefault(("id", f.image_index, ann_id), []).append(f)
    removed: list[dict[str, Any]] = []
    images, kept = [], []
    position_of: dict[Any, int] = {}
    for k, img in enumerate(coco["images"]):
        position_of.setdefault(img.get("id"), k)
        why = image_why.get(k)
        if why:
            removed.append({"record": "image", "id": img.get("id"), "file_name": img.get("file_name"),
                            "action": "dropped", "kinds": sorted({f.kind for f in why}),
                            "reasons": [f.reason for f in why]})
            continue
        images.append(copy.deepcopy(img))
        kept.append(k)
    new_image = {coco["images"][k].get("id"): img for k, img in zip(kept, images, strict=True)}
    annotations = []
    for k, ann in enumerate(coco["annotations"]):
        image_id = ann.get("image_id")
        position = position_of.get(image_id, -1)
        why = ann_why.get(("index", k), []) + ann_why.get(("id", position, ann.get("id")), [])
        entry = {"record": "annotation", "id": ann.get("id"), "image_id": image_id}
        if position in image_why:
            removed.append({**entry, "action": "dropped", "kinds": ["image-dropped"],
                            "reasons": [f"its image (id {image_id}) was dropped"]})
            continue
        if not why:
            annotations.append(copy.deepcopy(ann))
            continue
        kinds = sorted({f.kind for f in why})
        reasons = [f.reason for f in why]
        if as_ignore and "invalid-annotation" not in kinds and image_id in new_image:
            img = new_image[image_id]
            region = _json_rle(ann, int(img["height"]), int(img["width"]))
            meta = dict(img.get("datatools") or {})
            meta["ignore"] = [*meta.get("ignore", []), region]
            img["datatools"] = meta
            removed.append({**entry, "action": "ignored", "kinds": kinds, "reasons": reasons})
        else:
            removed.append({**entry, "action": "dropped", "kinds": kinds, "reasons": reasons})
    out = {**coco, "images": images, "annotations": annotations, "categories": copy.deepcopy(coco["categories"])}
    return Applied(out, removed, kept)

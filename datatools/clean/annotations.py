"""Annotation problems: what ``validate`` reports, degenerate objects, objects annotated twice or with two
classes, and objects whose size is an outlier for their class.

Areas, boxes and overlaps are those of the rasterised masks (the scan works on the one rasteriser's RLEs), not
the ``area`` and ``bbox`` fields a file declares.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from datatools.clean.findings import Finding
from datatools.clean.rules import AnnotationRules
from datatools.clean.scan import ImageFacts
from datatools.core.classes import ClassMap
from datatools.core.issues import Issue, Severity
from datatools.core.validate import is_hashable
from datatools.eda.tables import modified_z, robust_outliers

__all__ = ["AnnotationRules", "annotation_findings", "validate_findings"]


_SECTION_KIND = {("images", Severity.ERROR): "invalid-image", ("annotations", Severity.ERROR): "invalid-annotation",
                 ("categories", Severity.ERROR): "invalid-category", ("file", Severity.ERROR): "invalid-category"}


def validate_findings(issues: Sequence[Issue], coco: dict[str, Any], image_index: dict[Any, int]) -> list[Finding]:
    """Everything ``validate`` (records and files) reported, as findings.

    Errors on images and annotations are what ``--apply`` drops by default; warnings and notes are kept as
    findings to read. ``image_index`` maps an image id to its position (for annotation issues).
    """
    found = []
    for issue in issues:
        kind = _SECTION_KIND.get((issue.section, issue.severity))
        if kind is None:
            kind = "validate-warning" if issue.severity is Severity.WARNING else "validate-info"
        if issue.severity is Severity.ERROR and issue.section == "file" and issue.index is not None:
            kind = "invalid-image"  # a file problem found while reading an image
        image_id, file_name, position = None, "", -1
        ann_ids: tuple[Any, ...] = ()
        extra: dict[str, Any] = {}
        if issue.section == "annotations" and issue.index is not None:
            ann = coco["annotations"][issue.index]
            image_id, ann_ids, extra = ann.get("image_id"), (ann.get("id"),), {"ann_index": issue.index}
            position = image_index.get(image_id, -1) if is_hashable(image_id) else -1
        elif issue.section in ("images", "file") and issue.index is not None:
            img = coco["images"][issue.index]
            image_id, file_name, position = img.get("id"), str(img.get("file_name", "")), issue.index
        score = {Severity.ERROR: 3.0, Severity.WARNING: 2.0, Severity.INFO: 1.0}[issue.severity]
        found.append(Finding(kind, issue.code, issue.severity, score, image_id, file_name, issue.message, ann_ids,
                             image_index=position, extra=extra))
    return found


def _degenerate(ann: dict[str, Any], area: int, box: tuple[float, float, float, float],
                rules: AnnotationRules) -> tuple[str, float, str, Severity] | None:
    w, h = box[2], box[3]
    if area == 0:
        return "empty-mask", 1.0, "rasterises to no pixel", Severity.ERROR
    if area < rules.min_area:
        return "tiny", 1.0 - area / rules.min_area, f"{area} px, under {rules.min_area}", Severity.WARNING
    thickness = area / max(w, h, 1.0)
    if thickness < rules.min_thickness:
        return ("sliver", 1.0 - thickness / rules.min_thickness, f"{area} px over a {w:.0f}x{h:.0f} box: "
                f"{thickness:.2f} px thick on average", Severity.WARNING)
    fill = area / max(w * h, 1.0)
    if isinstance(ann.get("segmentation"), list) and fill < rules.min_fill:
        return ("low-fill", 1.0 - fill / rules.min_fill, f"the polygon covers {100 * fill:.1f}% of its "
                f"{w:.0f}x{h:.0f} box", Severity.WARNING)
    return None


def annotation_findings(
    images: Sequence[dict[str, Any]],
    annotations: Sequence[Sequence[dict[str, Any]]],
    facts: Sequence[ImageFacts],
    class_map: ClassMap,
    labels: Sequence[str],
    rules: AnnotationRules,
) -> list[Finding]:
    """Degenerate objects, double annotations, conflicting labels and size outliers.

    Args:
        images: the image records, by position.
        annotations: each image's scanned annotations (in the scan's order).
        facts: the scan's facts, by position.
        class_map: category id -> mask value.
        labels: class display names, by mask value - 1.
        rules: the thresholds.

    Example:
        >>> found = annotation_findings(ds.images, anns, facts, cm, names, AnnotationRules())
    """
    found: list[Finding] = []
    sizes: dict[int, list[tuple[float, int, int]]] = {}  # value -> (log area, image position, annotation position)
    for i, (img, anns, f) in enumerate(zip(images, annotations, facts, strict=True)):
        where = (img["id"], str(img["file_name"]))
        for k, (ann, area, box) in enumerate(zip(anns, f.ann_area, f.ann_bbox_xywh, strict=True)):
            if ann.get("iscrowd", 0):
                continue
            name = labels[class_map.value_of(ann["category_id"]) - 1]
            bad = _degenerate(ann, area, box, rules)
            if bad is not None:
                code, score, why, severity = bad
                found.append(Finding("degenerate", code, severity, score, *where, f"annotation id {ann['id']} "
                                     f"({name}): {why}", (ann["id"],), image_index=i))
            elif area > 0:
                sizes.setdefault(class_map.value_of(ann["category_id"]), []).append((math.log(area), i, k))
        for a, b, iou in f.pairs:
            first, second = anns[a], anns[b]
            va, vb = class_map.value_of(first["category_id"]), class_map.value_of(second["category_id"])
            if va == vb:
                found.append(Finding("double-annotation", "same-class", Severity.WARNING, iou, *where,
                                     f"annotation id {second['id']} repeats annotation id {first['id']} "
                                     f"({labels[va - 1]}, mask IoU {iou:.3f})", (second["id"],),
                                     related=f"annotation {first['id']}", image_index=i))
            else:
                found.append(Finding("conflicting-label", "two-classes", Severity.ERROR, iou, *where,
                                     f"annotation ids {first['id']} ({labels[va - 1]}) and {second['id']} "
                                     f"({labels[vb - 1]}) cover the same object (mask IoU {iou:.3f})",
                                     (first["id"], second["id"]), image_index=i))
    for value, rows in sorted(sizes.items()):
        if len(rows) < rules.min_class_instances:
            continue
        log_area = np.array([r[0] for r in rows])
        z = modified_z(log_area)
        median = math.exp(float(np.median(log_area)))
        for row, zi, flag in zip(rows, z.tolist(), robust_outliers(log_area).tolist(), strict=True):
            if not flag:
                continue
            _, i, k = row
            ann, img = annotations[i][k], images[i]
            area = facts[i].ann_area[k]
            side = "larger" if zi > 0 else "smaller"
            found.append(Finding("size-outlier", side, Severity.INFO, abs(zi), img["id"], str(img["file_name"]),
                                 f"annotation id {ann['id']} ({labels[value - 1]}): {area} px, far {side} than the "
                                 f"class's median {median:.0f} px (log-area z {zi:+.1f})", (ann["id"],),
                                 image_index=i))
    return found

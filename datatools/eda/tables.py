"""The tables of ``datatools eda``: one row per image, per annotation and per class, as parquet.

Columns are built as numpy arrays and lists from the records and the pass totals, and written with pyarrow
(no pandas needed), so the same input always gives the same bytes.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.classes import ClassMap
from datatools.core.rarity import RARE_THRESHOLD, rare_classes, rare_rule
from datatools.eda.accumulate import PIXEL_COLUMNS, Totals

__all__ = [
    "COCO_MEDIUM",
    "COCO_SMALL",
    "OUTLIER_PLAIN_Z",
    "OUTLIER_Z",
    "EdaTables",
    "build_summary",
    "build_tables",
    "modified_z",
    "robust_outliers",
    "write_parquet",
]

#: COCO size buckets by pixel area: small < 32^2 <= medium < 96^2 <= large.
COCO_SMALL = 32 * 32
COCO_MEDIUM = 96 * 96
#: An image is an outlier when its modified z-score (median and MAD; Iglewicz and Hoaglin) is above OUTLIER_Z
#: and its plain z-score above OUTLIER_PLAIN_Z.
OUTLIER_Z = 3.5
OUTLIER_PLAIN_Z = 3.0

Columns = dict[str, Any]


def modified_z(values: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Signed modified z-scores ``0.6745 * (x - median) / MAD`` (Iglewicz and Hoaglin); NaN stays NaN, and every
    score is 0 when fewer than 3 values are known or the MAD is 0.

    Example:
        >>> modified_z(np.array([1.0, 2, 3, 4, 100])).round(2).tolist()
        [-1.35, -0.67, 0.0, 0.67, 65.43]
    """
    out = np.where(np.isnan(values), np.nan, 0.0)
    ok = ~np.isnan(values)
    if ok.sum() < 3:
        return out
    x = values[ok]
    med = float(np.median(x))
    mad = float(np.median(np.abs(x - med)))
    if mad > 0:
        out[ok] = 0.6745 * (x - med) / mad
    return out


def robust_outliers(values: npt.NDArray[np.float64], z: float = OUTLIER_Z, plain_z: float = OUTLIER_PLAIN_Z
                    ) -> npt.NDArray[np.bool_]:
    """Values far from the bulk by a robust and by a plain measure: modified z-score
    ``0.6745 * |x - median| / MAD`` above ``z`` (:func:`modified_z`) and ``|x - mean| / std`` above ``plain_z``
    (NaN is never one).

    The robust score alone flags a quarter of a dataset whose values sit in a tight core with broad shoulders
    (many near-copies of a few photos); the plain one alone is pulled by the outliers themselves.

    Example:
        >>> robust_outliers(np.array([10.0, 11, 9, 10, 12, 10, 11, 9, 10, 11, 10, 12, 250])).tolist()[-3:]
        [False, False, True]
    """
    out = np.zeros(values.shape, dtype=bool)
    ok = ~np.isnan(values)
    if ok.sum() < 3:
        return out
    x = values[ok]
    std = float(x.std())
    if std == 0:
        return out
    out[ok] = (np.abs(modified_z(x)) > z) & (np.abs(x - x.mean()) / std > plain_z)
    return out


@dataclass
class EdaTables:
    """The three tables as columns (name -> array or list), plus the per-annotation class values used by plots."""

    images: Columns
    annotations: Columns
    classes: Columns
    ann_value: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    ann_image: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))


def _segmentation_shape(segm: Any) -> tuple[str, int, int | None]:
    if isinstance(segm, list):
        return "polygon", len(segm), sum(len(p) // 2 for p in segm)
    return "rle", 1, None


def _float_or_none(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(
        value) else None


def _image_columns(images: Sequence[dict[str, Any]], anns_by_image: Sequence[Sequence[dict[str, Any]]],
                   totals: Totals, labels: Sequence[str], value_of: dict[Any, int], read_pixels: bool) -> Columns:
    n, k = len(images), len(labels)
    cols: Columns = {
        "image_id": np.array([img["id"] for img in images], dtype=np.int64),
        "file_name": [str(img["file_name"]) for img in images],
        "width": np.array([img["width"] for img in images], dtype=np.int64),
        "height": np.array([img["height"] for img in images], dtype=np.int64),
    }
    cols["aspect"] = cols["width"] / np.maximum(cols["height"], 1)
    cols["n_annotations"] = np.array([len(a) for a in anns_by_image], dtype=np.int64)
    present = [sorted({value_of[a["category_id"]] for a in anns}) for anns in anns_by_image]
    cols["n_classes"] = np.array([len(p) for p in present], dtype=np.int64)
    cols["classes"] = [[labels[v - 1] for v in p] for p in present]
    if read_pixels:
        for c, name in enumerate(PIXEL_COLUMNS):
            cols[name] = np.ascontiguousarray(totals.pixel_table[:, c])
        cols["brightness_outlier"] = robust_outliers(cols["brightness"])
        cols["contrast_outlier"] = robust_outliers(cols["contrast"])
        problems: list[str | None] = [None] * n
        for issue in totals.issues:
            if issue.index is not None:
                problems[issue.index] = issue.code
        cols["file_problem"] = problems
    px = totals.class_px if len(totals.class_px) else np.zeros((n, k + 2), np.int64)
    cols["px_background"] = px[:, 0]
    for v, label in enumerate(labels, start=1):
        cols[f"px_{label}"] = px[:, v]
    cols["px_ignore"] = px[:, k + 1]
    overlap = totals.overlap_rows
    cols["overlap_px"] = overlap[:, 0]
    cols["conflict_px"] = overlap[:, 1]
    for j, policy in enumerate(totals.policies):
        cols[f"changed_px_{policy}"] = overlap[:, 2 + j]
    return cols


def _annotation_columns(annotations: Sequence[dict[str, Any]], order: npt.NDArray[np.int64],
                        images: Sequence[dict[str, Any]], image_pos: dict[Any, int], totals: Totals,
                        labels: Sequence[str], value_of: dict[Any, int]) -> tuple[Columns, npt.NDArray[np.int64],
                                                                                   npt.NDArray[np.int64]]:
    """``order[j]`` is the file position of the j-th annotation in pass order."""
    m = len(annotations)
    px = np.zeros(m, dtype=np.int64)
    bbox = np.zeros((m, 4), dtype=np.float64)
    px[order] = totals.ann_px
    if m:
        bbox[order] = totals.ann_bbox_xywh
    img_idx = np.array([image_pos[a["image_id"]] for a in annotations], dtype=np.int64)
    values = np.array([value_of[a["category_id"]] for a in annotations], dtype=np.int64)
    image_px = np.array([images[i]["width"] * images[i]["height"] for i in img_idx], dtype=np.float64)
    shapes = [_segmentation_shape(a["segmentation"]) for a in annotations]
    rel = px / np.maximum(image_px, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        aspect = np.where(bbox[:, 3] > 0, bbox[:, 2] / np.where(bbox[:, 3] > 0, bbox[:, 3], 1), np.nan)
    cols: Columns = {
        "annotation_id": np.array([a["id"] for a in annotations], dtype=np.int64),
        "image_id": np.array([a["image_id"] for a in annotations], dtype=np.int64),
        "category_id": np.array([a["category_id"] for a in annotations], dtype=np.int64),
        "class": [labels[v - 1] for v in values],
        "class_value": values,
        "iscrowd": np.array([bool(a.get("iscrowd", 0)) for a in annotations], dtype=bool),
        "segmentation": [s[0] for s in shapes],
        "n_parts": np.array([s[1] for s in shapes], dtype=np.int64),
        "n_points": [s[2] for s in shapes],
        "area_field": [_float_or_none(a.get("area")) for a in annotations],
        "pixel_area": px,
        "bbox_x": bbox[:, 0], "bbox_y": bbox[:, 1], "bbox_w": bbox[:, 2], "bbox_h": bbox[:, 3],
        "bbox_aspect": aspect,
        "rel_area": rel,
        "rel_side": np.sqrt(rel),
        "coco_size": ["small" if p < COCO_SMALL else "medium" if p < COCO_MEDIUM else "large" for p in px],
    }
    return cols, values, img_idx


def _class_columns(totals: Totals, class_map: ClassMap, labels: Sequence[str], values: npt.NDArray[np.int64],
                   img_idx: npt.NDArray[np.int64], px: npt.NDArray[np.int64], rel: npt.NDArray[np.float64],
                   n_images: int, rare_threshold: float) -> tuple[Columns, float]:
    k = len(labels)
    class_px = totals.class_px.sum(axis=0) if len(totals.class_px) else np.zeros(k + 2, np.int64)
    total_px = int(class_px.sum())
    labelled_px = int(class_px[1: k + 1].sum())
    instances = np.bincount(values, minlength=k + 1)[1:].astype(np.int64) if len(values) else np.zeros(k, np.int64)
    images_with = np.zeros(k, dtype=np.int64)
    for v in range(1, k + 1):
        images_with[v - 1] = len(np.unique(img_idx[values == v]))
    threshold = float(rare_threshold)
    n_ann = max(int(instances.sum()), 1)
    instance_share = instances / n_ann
    labelled_share = class_px[1: k + 1] / max(labelled_px, 1)
    rarity = rare_classes(dict(enumerate(images_with.tolist())), threshold)
    rare = np.zeros(k, dtype=bool)
    rare[list(rarity.rare)] = True

    def per_class(fn: Any, arr: npt.NDArray[Any]) -> list[float | None]:
        return [float(fn(arr[values == v])) if (values == v).any() else None for v in range(1, k + 1)]

    def bucket(lo: int, hi: float) -> list[float | None]:
        return [float(((px[values == v] >= lo) & (px[values == v] < hi)).mean()) if (values == v).any() else None
                for v in range(1, k + 1)]

    has_ignore = bool(class_px[k + 1])
    bg_images = int((totals.class_px[:, 0] > 0).sum()) if len(totals.class_px) else 0
    ig_images = int((totals.class_px[:, k + 1] > 0).sum()) if len(totals.class_px) else 0

    def full(bg: Any, cls: Sequence[Any], ignore: Any) -> list[Any]:
        return [bg, *cls, *([ignore] if has_ignore else [])]

    pixels = full(int(class_px[0]), class_px[1: k + 1].tolist(), int(class_px[k + 1]))
    cols: Columns = {
        "value": np.array(full(0, range(1, k + 1), 255), dtype=np.int64),
        "category_id": full(None, [c.category_id for c in class_map.classes], None),
        "name": full("background", labels, "ignore"),
        "instances": np.array(full(0, instances.tolist(), 0), dtype=np.int64),
        "images": np.array(full(bg_images, images_with.tolist(), ig_images), dtype=np.int64),
        "image_share": np.array(full(bg_images, images_with.tolist(), ig_images), dtype=np.float64) / max(n_images, 1),
        "instance_share": np.array(full(0.0, instance_share.tolist(), 0.0), dtype=np.float64),
        "pixels": np.array(pixels, dtype=np.int64),
        "pixel_share": np.array(pixels, dtype=np.float64) / max(total_px, 1),
        "labelled_share": full(None, labelled_share.tolist(), None),
        "instances_per_image": full(None, [float(i / m) if m else None for i, m in zip(instances, images_with,
                                                                                        strict=True)], None),
        "median_pixel_area": full(None, per_class(np.median, px), None),
        "median_rel_area": full(None, per_class(np.median, rel), None),
        "small_share": full(None, bucket(0, COCO_SMALL), None),
        "medium_share": full(None, bucket(COCO_SMALL, COCO_MEDIUM), None),
        "large_share": full(None, bucket(COCO_MEDIUM, math.inf), None),
        "rare": np.array(full(False, rare.tolist(), False), dtype=bool),
    }
    return cols, threshold


def build_tables(
    images: Sequence[dict[str, Any]],
    annotations: Sequence[dict[str, Any]],
    anns_by_image: Sequence[Sequence[dict[str, Any]]],
    totals: Totals,
    class_map: ClassMap,
    *,
    read_pixels: bool,
    rare_threshold: float = RARE_THRESHOLD,
) -> tuple[EdaTables, float]:
    """The images, annotations and classes tables from the records and the pass totals.

    Args:
        images: image records, in the order of the pass.
        annotations: annotation records, in file order.
        anns_by_image: each image's annotations in file order (the order the pass saw them).
        totals: what the pass summed.
        class_map: category id -> value.
        read_pixels: whether images were decoded (image statistics columns).
        rare_threshold: a class is rare when fewer images hold it than this fraction of the images holding
            the most common class (:mod:`datatools.core.rarity`).

    Returns:
        The tables and the rare threshold used.

    Example:
        >>> tables, threshold = build_tables(ds.images, ds.annotations, by_image, totals, ds.class_map(),
        ...                                  read_pixels=True)
        >>> list(tables.classes["name"])[:1]
        ['background']
    """
    labels = class_map.display_names()
    value_of = {c.category_id: c.value for c in class_map.classes}
    image_pos = {img["id"]: i for i, img in enumerate(images)}
    file_pos = {id(a): j for j, a in enumerate(annotations)}
    order = np.array([file_pos[id(a)] for anns in anns_by_image for a in anns], dtype=np.int64)
    image_cols = _image_columns(images, anns_by_image, totals, labels, value_of, read_pixels)
    ann_cols, values, img_idx = _annotation_columns(annotations, order, images, image_pos, totals, labels, value_of)
    class_cols, threshold = _class_columns(totals, class_map, labels, values, img_idx, ann_cols["pixel_area"],
                                           ann_cols["rel_area"], len(images), rare_threshold)
    return EdaTables(image_cols, ann_cols, class_cols, values, img_idx), threshold


def write_parquet(path: str | os.PathLike[str], columns: Columns) -> None:
    """Write columns as a parquet file (deterministic bytes for the same columns).

    Example:
        >>> write_parquet("classes.parquet", tables.classes)
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    from datatools.eda.warmup import arrays_without_pandas

    arrays = {}
    with arrays_without_pandas():
        for name, col in columns.items():
            if isinstance(col, np.ndarray):
                arrays[name] = pa.array(col)
            elif col and all(isinstance(v, list) for v in col):
                arrays[name] = pa.array(col, type=pa.list_(pa.string()))
            else:
                arrays[name] = pa.array(col)
        table = pa.table(arrays)
    pq.write_table(table, str(path), compression="zstd")


def _r(value: float) -> float:
    return round(float(value), 6)


def build_summary(
    *,
    source: dict[str, str],
    tables: EdaTables,
    totals: Totals,
    threshold: float,
    overlap: str,
    read_pixels: bool,
    problems: dict[str, Any],
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The headline numbers of the report as a JSON-ready dict (same input, same dict).

    Example:
        >>> summary = build_summary(source={"annotations": "a.json", "images": "img/"}, tables=tables,
        ...                         totals=totals, threshold=0.05, overlap="smaller-on-top", read_pixels=True,
        ...                         problems={"error": 0, "warning": 0, "info": 0, "codes": {}})
    """
    img, ann, cls = tables.images, tables.annotations, tables.classes
    n_images = len(img["image_id"])
    class_rows = [i for i, v in enumerate(cls["value"]) if 0 < v < 255]
    pixels = cls["pixels"]
    total_px = max(int(pixels.sum()), 1)
    n_ann = img["n_annotations"]
    sizes = np.asarray(ann["coco_size"], dtype=object)
    size_pairs: dict[tuple[int, int], int] = {}
    for w, h in zip(img["width"].tolist(), img["height"].tolist(), strict=True):
        size_pairs[(w, h)] = size_pairs.get((w, h), 0) + 1
    overlap_rows = totals.overlap_rows
    summary: dict[str, Any] = {
        "source": source,
        "images": n_images,
        "annotations": len(ann["annotation_id"]),
        "classes": len(class_rows),
        "overlap_policy": overlap,
        "images_read": read_pixels,
        "normalize": None,
        "background_share": _r(pixels[0] / total_px),
        "ignore_share": _r(sum(int(p) for p, v in zip(pixels, cls["value"], strict=True) if v == 255) / total_px),
        "rare": {"threshold": _r(threshold), "rule": rare_rule(threshold),
                 "classes": [cls["name"][i] for i in class_rows if cls["rare"][i]],
                 "absent": [cls["name"][i] for i in class_rows if not cls["images"][i]]},
        "class_balance": [
            {"name": cls["name"][i], "value": int(cls["value"][i]), "category_id": cls["category_id"][i],
             "instances": int(cls["instances"][i]), "images": int(cls["images"][i]),
             "pixel_share": _r(cls["pixel_share"][i]), "labelled_share": _r(cls["labelled_share"][i] or 0.0),
             "rare": bool(cls["rare"][i])}
            for i in class_rows
        ],
        "objects_per_image": {
            "mean": _r(n_ann.mean()) if n_images else 0.0, "median": _r(np.median(n_ann)) if n_images else 0.0,
            "max": int(n_ann.max()) if n_images else 0, "images_without_annotations": int((n_ann == 0).sum())},
        "object_size": {s: _r((sizes == s).mean()) if len(sizes) else 0.0 for s in ("small", "medium", "large")},
        "image_sizes": [{"width": w, "height": h, "images": c}
                        for (w, h), c in sorted(size_pairs.items(), key=lambda kv: (-kv[1], kv[0]))[:10]],
        "overlap": {
            "images_with_overlap": int((overlap_rows[:, 0] > 0).sum()),
            "images_with_class_conflict": int((overlap_rows[:, 1] > 0).sum()),
            "pixels_claimed_twice": int(overlap_rows[:, 0].sum()),
            "pixels_claimed_by_two_classes": int(overlap_rows[:, 1].sum()),
            "changed_px": {p: int(overlap_rows[:, 2 + j].sum()) for j, p in enumerate(totals.policies)},
        },
        "problems": problems,
    }
    norm = totals.normalize_mean_std()
    if read_pixels and norm is not None:
        summary["normalize"] = {"mean": [_r(v) for v in norm[0]], "std": [_r(v) for v in norm[1]],
                                "max_pixel_value": 255, "pixels": totals.pixels}
        for key in ("brightness", "contrast"):
            vals = img[key]
            ok = ~np.isnan(vals)
            summary[key] = {"median": _r(np.median(vals[ok])) if ok.any() else None,
                            "outlier_rule": f"modified z-score above {OUTLIER_Z} and z-score above {OUTLIER_PLAIN_Z}",
                            "outliers": [int(i) for i in img["image_id"][img[f"{key}_outlier"]]]}
    summary.update(extra or {})
    return summary

"""Record-level validation of a COCO instance file: every problem, with a severity, none stops the search."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator
from numbers import Real
from typing import Any

import numpy as np

from datatools.core.issues import Issue, Severity
from datatools.core.paths import file_name_problem
from datatools.core.rle_counts import string_counts

__all__ = ["is_hashable", "validate_records"]

E, W, INFO = Severity.ERROR, Severity.WARNING, Severity.INFO


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def _has_non_finite(value: object) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_non_finite(v) for v in value)
    return False


def is_hashable(value: object) -> bool:
    """Whether ``value`` can be looked up in a set: a list or object where an id belongs must not crash."""
    try:
        hash(value)
    except TypeError:
        return False
    return True


class _Checker:
    def __init__(self, coco: dict[str, Any], file: str) -> None:
        self.coco, self.file = coco, file
        self.issues: list[Issue] = []

    def add(self, severity: Severity, code: str, message: str, section: str = "file", index: int | None = None,
            record_id: Any = None) -> None:
        self.issues.append(Issue(severity, code, message, self.file, section, index, record_id))

    def required(self, section: str, i: int, rec: dict[str, Any], keys: tuple[str, ...]) -> bool:
        missing = [k for k in keys if k not in rec]
        if missing:
            self.add(E, "missing-key", f"{section}[{i}] (id {rec.get('id')!r}) lacks required key "
                     f"{', '.join(repr(k) for k in missing)}", section, i, rec.get("id"))
        return not missing

    def finite(self, section: str, i: int, rec: dict[str, Any]) -> None:
        """Report fields (segmentation aside, checked on its own) holding NaN or infinity: JSON cannot hold
        them, so such a record could be read but never written back."""
        bad = [key for key, value in rec.items() if key != "segmentation" and _has_non_finite(value)]
        if bad:
            fields = ", ".join(repr(k) for k in bad)
            self.add(E, "nan-value", f"{section}[{i}] (id {rec.get('id')!r}): {fields} holds NaN or infinite "
                     "numbers", section, i, rec.get("id"))

    def unique_ids(self, section: str, code: str) -> None:
        seen: set[Any] = set()
        for i, rec in enumerate(self.coco[section]):
            rid = rec.get("id")
            if "id" in rec and not _is_int(rid):
                self.add(E, "bad-id", f"{section}[{i}] has id {rid!r}, expected an integer", section, i, rid)
            elif rid in seen:
                self.add(E, code, f"{section}[{i}] repeats id {rid} of an earlier record", section, i, rid)
            if _is_int(rid):
                seen.add(rid)


def _images(c: _Checker) -> dict[int, tuple[int, int]]:
    """Check images; return {id: (height, width)} of the usable ones."""
    c.unique_ids("images", "duplicate-image-id")
    sizes: dict[int, tuple[int, int]] = {}
    names: Counter[str] = Counter()
    for i, img in enumerate(c.coco["images"]):
        if not c.required("images", i, img, ("id", "file_name", "width", "height")):
            continue
        c.finite("images", i, img)
        rid = img["id"]
        problem = file_name_problem(img["file_name"])
        if problem:
            c.add(E, "unsafe-file-name", f"image id {rid}: {problem}", "images", i, rid)
        else:
            names[img["file_name"]] += 1
        w, h = img["width"], img["height"]
        if not (_is_int(w) and _is_int(h) and w > 0 and h > 0):
            c.add(E, "bad-image-size", f"image id {rid}: width/height {w!r}x{h!r} must be positive integers",
                  "images", i, rid)
        elif _is_int(rid) and rid not in sizes:
            sizes[rid] = (h, w)
    for i, img in enumerate(c.coco["images"]):
        if isinstance(img.get("file_name"), str) and names[img["file_name"]] > 1:
            c.add(W, "duplicate-file-name", f"image id {img.get('id')}: file_name {img['file_name']!r} is used by "
                  f"{names[img['file_name']]} images", "images", i, img.get("id"))
    return sizes


def _categories(c: _Checker) -> set[int]:
    c.unique_ids("categories", "duplicate-category-id")
    # every integer id is known, even that of a broken record: its annotations are not "unknown" (the record's
    # own error is reported, and dropping it drops them)
    ids: set[int] = {cat["id"] for cat in c.coco["categories"] if _is_int(cat.get("id"))}
    names: Counter[str] = Counter(cat["name"] for cat in c.coco["categories"]
                                  if isinstance(cat.get("name"), str))
    for i, cat in enumerate(c.coco["categories"]):
        if not c.required("categories", i, cat, ("id", "name")):
            continue
        c.finite("categories", i, cat)
        rid = cat["id"]
        if not isinstance(cat["name"], str):
            c.add(E, "bad-category-name", f"category id {rid!r}: name {cat['name']!r} must be a string",
                  "categories", i, rid)
            continue
        if rid == 0:
            c.add(W, "category-id-zero", f"category {cat['name']!r} has id 0; it gets its own mask value, never the "
                  "background 0", "categories", i, rid)
        if names[cat["name"]] > 1:
            c.add(W, "duplicate-category-name", f"category id {rid}: name {cat['name']!r} is shared by "
                  f"{names[cat['name']]} categories; they stay distinct classes", "categories", i, rid)
    return ids


def _polygon_problems(segm: list[Any], hw: tuple[int, int]) -> Iterator[tuple[Severity, str, str]]:
    h, w = hw
    if not segm:
        yield E, "empty-segmentation", "segmentation is an empty list"
        return
    xs: list[float] = []
    ys: list[float] = []
    for k, part in enumerate(segm):
        if not isinstance(part, list):
            yield E, "bad-segmentation", f"polygon part {k} is a {type(part).__name__}, expected a list of x, y"
            return
        # plain floats and ints (what json gives) checked by type first: the ABC check costs ~10x per coordinate
        if not all(type(v) is float or type(v) is int for v in part) and not all(_is_number(v) for v in part):
            yield E, "bad-segmentation", f"polygon part {k} holds non-numeric coordinates"
            return
        if not np.isfinite(np.asarray(part, dtype=np.float64)).all():
            yield E, "nan-coordinates", f"polygon part {k} holds NaN or infinite coordinates"
            return
        if len(part) % 2:
            yield E, "bad-segmentation", f"polygon part {k} has an odd number of coordinates ({len(part)})"
            return
        if len(part) < 6:
            yield E, "too-few-points", f"polygon part {k} has {len(part) // 2} point(s), at least 3 are needed"
            return
        xs += part[0::2]
        ys += part[1::2]
    if max(xs) <= 0 or max(ys) <= 0 or min(xs) >= w or min(ys) >= h:
        yield E, "outside-image", f"polygon lies entirely outside the {w}x{h} image"
    elif min(xs) < 0 or min(ys) < 0 or max(xs) > w or max(ys) > h:
        yield W, "partly-outside-image", f"polygon extends outside the {w}x{h} image (it is clipped)"


def _compressed_rle_runs(counts: str | bytes) -> list[int] | None:
    """The run lengths of a compressed COCO RLE string, or ``None`` when it is malformed (checked before
    pycocotools decodes it: pycocotools raises on runs that overflow the mask and leaves pixels unset when they fall
    short)."""
    try:
        return string_counts(counts).tolist()  # type: ignore[no-any-return]
    except ValueError:  # UnicodeEncodeError included
        return None


def _rle_problems(segm: dict[str, Any], hw: tuple[int, int]) -> Iterator[tuple[Severity, str, str]]:
    size, counts = segm.get("size"), segm.get("counts")
    if not (isinstance(size, list) and len(size) == 2 and all(_is_int(v) for v in size)):
        yield E, "bad-rle", f"RLE size {size!r} must be [height, width]"
        return
    if tuple(size) != hw:
        yield E, "rle-size-mismatch", f"RLE size {size} disagrees with the image size [height, width] = {list(hw)}"
        return
    if isinstance(counts, list):
        if not all(_is_int(v) and v >= 0 for v in counts):
            yield E, "bad-rle", "uncompressed RLE counts must be non-negative integers"
        elif sum(counts) != hw[0] * hw[1]:
            yield E, "bad-rle", f"uncompressed RLE counts sum to {sum(counts)}, expected {hw[0] * hw[1]} pixels"
        elif not any(counts[1::2]):
            yield E, "empty-segmentation", "RLE mask has no foreground pixel"
    elif not isinstance(counts, (str, bytes)) or not counts:
        yield E, "bad-rle", "RLE counts must be a list of integers or a compressed string"
    else:
        runs = _compressed_rle_runs(counts)
        if runs is None:
            yield E, "bad-rle", "compressed RLE counts are not a valid COCO RLE string"
        elif sum(runs) != hw[0] * hw[1]:
            yield E, "bad-rle", f"compressed RLE counts cover {sum(runs)} pixels, expected {hw[0] * hw[1]}"
        elif not any(runs[1::2]):
            yield E, "empty-segmentation", "RLE mask has no foreground pixel"


def _annotations(c: _Checker, sizes: dict[int, tuple[int, int]], cat_ids: set[int]) -> set[Any]:
    c.unique_ids("annotations", "duplicate-annotation-id")
    image_ids = {img.get("id") for img in c.coco["images"] if is_hashable(img.get("id"))}
    used: set[Any] = set()
    for i, ann in enumerate(c.coco["annotations"]):
        if is_hashable(ann.get("image_id")) and ann.get("image_id") in image_ids:
            used.add(ann["image_id"])  # an image whose only annotation is broken is not "without annotations"
        if not c.required("annotations", i, ann, ("id", "image_id", "category_id")):
            continue
        c.finite("annotations", i, ann)
        rid = ann["id"]
        where = f"annotation id {rid}"

        def add(sev: Severity, code: str, msg: str) -> None:
            c.add(sev, code, f"{where}: {msg}", "annotations", i, rid)  # noqa: B023

        if not is_hashable(ann["image_id"]) or ann["image_id"] not in image_ids:
            add(E, "unknown-image", f"image_id {ann['image_id']!r} matches no image")
            continue
        if not is_hashable(ann["category_id"]) or ann["category_id"] not in cat_ids:
            add(E, "unknown-category", f"category_id {ann['category_id']!r} matches no category")
        if ann.get("iscrowd", 0) not in (0, 1):
            add(E, "bad-iscrowd", f"iscrowd is {ann['iscrowd']!r}, expected 0 or 1")
        segm = ann.get("segmentation")
        if "segmentation" not in ann or segm is None:
            add(E, "no-segmentation", "segmentation is missing or null (a box-only record cannot be rasterised)")
            continue
        hw = sizes.get(ann["image_id"])
        if hw is None:
            continue  # the image itself is broken and reported
        if isinstance(segm, list):
            problems = _polygon_problems(segm, hw)
        elif isinstance(segm, dict):
            problems = _rle_problems(segm, hw)
        else:
            problems = iter([(E, "bad-segmentation", f"segmentation is a {type(segm).__name__}, expected polygons "
                              "or RLE")])
        for sev, code, msg in problems:
            add(sev, code, msg)
    return used


def validate_records(coco: dict[str, Any], file: str = "<annotations>") -> list[Issue]:
    """Check every record of a COCO dict (as returned by ``read_coco_json``) without touching the disk.

    Args:
        coco: the COCO instance dict.
        file: the name to report problems under (the annotation file).

    Returns:
        Every problem found, in a stable order: images, categories, annotations, then images without
        annotations (info).

    Example:
        >>> issues = validate_records({"images": [], "annotations": [], "categories": []})
        >>> issues
        []
    """
    c = _Checker(coco, file)
    sizes = _images(c)
    cat_ids = _categories(c)
    used = _annotations(c, sizes, cat_ids)
    for i, img in enumerate(coco["images"]):
        if "id" in img and is_hashable(img["id"]) and img["id"] not in used:
            c.add(INFO, "no-annotations", f"image id {img['id']} ({img.get('file_name')!r}) has no annotations",
                  "images", i, img["id"])
    return c.issues

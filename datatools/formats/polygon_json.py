"""Per-image polygon JSON (hand-bone X-ray style) to and from a COCO dict.

Layout: ``images/ID001/image1661130828152_R.png`` is labelled by ``labels/ID001/image1661130828152_R.json``,
which holds ``{"annotations": [{"label": "finger-1", "points": [[x, y], ...], "type": "poly_seg"}, ...]}``.
The parent folder (``ID001``, the patient) is kept as ``images[].attributes.folder`` for group k-fold.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections import defaultdict
from pathlib import Path
from typing import Any

from datatools.core.atomic import atomic_write_json
from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.core.imageio import IMAGE_EXTENSIONS, read_image_size
from datatools.core.paths import file_name_problem, require_folder

__all__ = ["IMAGE_EXTENSIONS", "coco_to_polygon_json", "polygon_json_to_coco"]

_KNOWN_KEYS = ("label", "points")


def _walk(root: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """Files under ``root`` with one of ``suffixes`` (any case), hidden files and folders skipped, sorted."""
    found = [
        p.relative_to(root)
        for p in root.rglob("*")
        if p.suffix.lower() in suffixes and p.is_file() and not p.name.startswith(".")
    ]
    visible = [p for p in found if not any(part.startswith(".") for part in p.parts)]
    return sorted(visible, key=lambda p: p.parts)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise UnreadableFileError(f"{path}: not UTF-8 text, expected a polygon JSON file") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise UnreadableFileError(f"{path}: invalid JSON at {where} ({exc.msg})") from None


def _points(path: Path, index: int, points: Any) -> list[tuple[float, float]]:
    where = f"{path}: annotations[{index}]"
    if not isinstance(points, list) or len(points) < 3:
        count = len(points) if isinstance(points, list) else type(points).__name__
        raise InvalidDatasetError(f"{where}: 'points' must be a list of at least 3 [x, y] pairs, got {count}")
    for point in points:
        ok = isinstance(point, list | tuple) and len(point) == 2
        if not ok or not all(_is_number(v) for v in point):
            raise InvalidDatasetError(f"{where}: point {point!r} is not a finite numeric [x, y] pair")
    return [(point[0], point[1]) for point in points]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _shoelace(points: list[tuple[float, float]]) -> float:
    total = 0.0
    for (x0, y0), (x1, y1) in zip(points, points[1:] + points[:1], strict=True):
        total += x0 * y1 - x1 * y0
    return abs(total) / 2.0


def polygon_json_to_coco(
    labels_dir: str | os.PathLike[str], images_dir: str | os.PathLike[str], classes: list[str] | None = None
) -> dict[str, Any]:
    """Convert a tree of per-image polygon JSON files into one COCO dict.

    Args:
        labels_dir: root of the label tree (``*.json``, walked in sorted order).
        images_dir: root of the image tree; each JSON's image has the same relative path and stem.
        classes: category names in id order; ``None`` takes labels in order of first appearance.

    Returns:
        A COCO dict (``info``, ``licenses``, ``images``, ``annotations``, ``categories``); ids start at 1.
        Source annotation keys other than ``label``/``points`` (e.g. ``type``) go to ``attributes``.

    Raises:
        UnreadableFileError: a folder is missing, or a JSON or image cannot be read.
        InvalidDatasetError: no JSON found, no (or several) images for a JSON, a bad polygon, or a label
            not in ``classes``; the message names the JSON file and the annotation index.

    Example:
        >>> coco = polygon_json_to_coco("train/labels", "train/images", classes=["finger-1", "finger-2"])
        >>> coco["images"][0]["attributes"]
        {'folder': 'ID001'}
    """
    labels_root, images_root = Path(labels_dir), Path(images_dir)
    for root, what in ((labels_root, "labels"), (images_root, "images")):
        require_folder(root, f"{what} folder")
    label_files = _walk(labels_root, (".json",))
    if not label_files:
        raise InvalidDatasetError(f"{labels_root}: no label .json files found")
    by_stem: dict[Path, list[Path]] = defaultdict(list)
    for rel in _walk(images_root, IMAGE_EXTENSIONS):
        by_stem[rel.with_suffix("")].append(rel)
    fixed = classes is not None
    cat_ids = {name: i for i, name in enumerate(classes or [], start=1)}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for rel in label_files:
        path = labels_root / rel
        matches = by_stem.get(rel.with_suffix(""), [])
        if len(matches) != 1:
            found = ", ".join(m.as_posix() for m in matches) or "none"
            wanted = f"{rel.with_suffix('').as_posix()}.<{'|'.join(e[1:] for e in IMAGE_EXTENSIONS)}>"
            raise InvalidDatasetError(
                f"{path}: expected exactly one image {wanted} under {images_root}, found {found}"
            )
        doc = _read_json(path)
        if not isinstance(doc, dict) or not isinstance(doc.get("annotations"), list):
            raise InvalidDatasetError(f"{path}: expected an object with an 'annotations' list")
        width, height = read_image_size(images_root / matches[0])
        image_id = len(images) + 1
        folder = rel.parent.as_posix()
        images.append(
            {
                "id": image_id,
                "file_name": matches[0].as_posix(),
                "width": width,
                "height": height,
                "attributes": {"folder": "" if folder == "." else folder},
            }
        )
        for index, ann in enumerate(doc["annotations"]):
            if not isinstance(ann, dict) or not isinstance(ann.get("label"), str):
                raise InvalidDatasetError(f"{path}: annotations[{index}] needs a string 'label'")
            label = ann["label"]
            if label not in cat_ids:
                if fixed:
                    raise InvalidDatasetError(
                        f"{path}: annotations[{index}] has label {label!r}, which is not in classes {classes}"
                    )
                cat_ids[label] = len(cat_ids) + 1
            points = _points(path, index, ann.get("points"))
            xs, ys = [p[0] for p in points], [p[1] for p in points]
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": cat_ids[label],
                    "segmentation": [[v for point in points for v in point]],
                    "area": _shoelace(points),
                    "bbox": [min(xs), min(ys), max(xs) - min(xs), max(ys) - min(ys)],
                    "iscrowd": 0,
                    "attributes": {k: v for k, v in ann.items() if k not in _KNOWN_KEYS},
                }
            )
    return {
        "info": {"description": "converted from per-image polygon JSON by datatools"},
        "licenses": [],
        "images": images,
        "annotations": annotations,
        "categories": [{"id": i, "name": name, "supercategory": ""} for name, i in cat_ids.items()],
    }


def coco_to_polygon_json(coco: dict[str, Any], out_dir: str | os.PathLike[str]) -> list[Path]:
    """Write one polygon JSON per COCO image, mirroring ``file_name`` (``<stem>.json``) under ``out_dir``.

    Each polygon part of an annotation becomes one ``{"label", "points", "type": "poly_seg"}`` entry, in
    annotation order; RLE annotations are skipped with a warning. Images without annotations get
    ``{"annotations": []}``. Each file is written atomically.

    Args:
        coco: a COCO dict (``images``, ``annotations``, ``categories``).
        out_dir: root of the label tree to write.

    Returns:
        The written files, in ``images`` order.

    Raises:
        InvalidDatasetError: a bad ``file_name``, two images with the same stem, an unknown image or category
            id, or a polygon with an odd or too small number of coordinates.

    Example:
        >>> coco_to_polygon_json(coco, "out/labels")[0]
        PosixPath('out/labels/ID001/image1661130828152_R.json')
    """
    out = Path(out_dir)
    names = {cat["id"]: cat["name"] for cat in coco.get("categories", [])}
    entries: dict[Any, list[dict[str, Any]]] = {img["id"]: [] for img in coco.get("images", [])}
    skipped = 0
    for ann in coco.get("annotations", []):
        if ann.get("image_id") not in entries or ann.get("category_id") not in names:
            raise InvalidDatasetError(
                f"annotation {ann.get('id')!r}: unknown image_id {ann.get('image_id')!r} "
                f"or category_id {ann.get('category_id')!r}"
            )
        segmentation = ann.get("segmentation")
        if not isinstance(segmentation, list):
            skipped += 1
            continue
        for part in segmentation:
            if not isinstance(part, list) or len(part) % 2 or len(part) < 6:
                raise InvalidDatasetError(
                    f"annotation {ann.get('id')!r}: polygon part needs an even number (>= 6) of coordinates"
                )
            points = [[part[i], part[i + 1]] for i in range(0, len(part), 2)]
            entry = {"label": names[ann["category_id"]], "points": points, "type": "poly_seg"}
            entries[ann["image_id"]].append(entry)
    if skipped:
        warnings.warn(f"{skipped} non-polygon (RLE) annotations were not written", stacklevel=2)
    targets: dict[Path, Any] = {}
    for img in coco.get("images", []):
        problem = file_name_problem(img.get("file_name"))
        if problem:
            raise InvalidDatasetError(f"image {img.get('id')!r}: {problem}")
        target = out / Path(img["file_name"]).with_suffix(".json")
        if target in targets:
            raise InvalidDatasetError(f"images {targets[target]!r} and {img['id']!r} both map to {target}")
        targets[target] = img["id"]
    for target, image_id in targets.items():
        atomic_write_json(target, {"annotations": entries[image_id]})
    return list(targets)

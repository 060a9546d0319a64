"""Reading and writing COCO instance files (records only, never pixels)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from datatools.core.atomic import atomic_write_json
from datatools.core.errors import InvalidDatasetError, UnreadableFileError

__all__ = ["read_coco_json", "write_coco_json"]

_SECTIONS = ("images", "annotations", "categories")


def read_coco_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a COCO instance file into a dict, refusing what is not one.

    Only the container shape is checked here (a JSON object whose ``images``, ``annotations`` and
    ``categories`` are lists of objects); record-level problems are found by :mod:`datatools.core.validate`.

    Raises:
        UnreadableFileError: the file is missing, unreadable, truncated or not JSON.
        InvalidDatasetError: the JSON is not a COCO instance file (panoptic and captions files included).

    Example:
        >>> coco = read_coco_json("examples/medical_waste/train/_annotations.coco.json")
        >>> len(coco["images"]) > 0
        True
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read()
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: annotation file not found") from None
    except IsADirectoryError:
        raise UnreadableFileError(f"{path}: is a directory, expected a COCO json file") from None
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        coco = json.loads(raw)
    except UnicodeDecodeError:
        raise UnreadableFileError(f"{path}: not UTF-8 text, expected a COCO json file") from None
    except json.JSONDecodeError as exc:
        # a cut inside a string is reported at the string's start, so "Unterminated string" means truncated too
        truncated = exc.pos >= len(raw.rstrip()) or exc.msg.startswith("Unterminated string")
        what = "truncated JSON" if truncated else "invalid JSON"
        raise UnreadableFileError(f"{path}: {what} at line {exc.lineno} column {exc.colno} ({exc.msg})") from None
    if not isinstance(coco, dict):
        raise InvalidDatasetError(f"{path}: top level is a JSON {type(coco).__name__}, expected an object")
    missing = [key for key in ("images", "categories") if key not in coco]
    if missing:
        raise InvalidDatasetError(f"{path}: not a COCO instance file (missing top-level key {', '.join(missing)})")
    coco.setdefault("annotations", [])
    for key in _SECTIONS:
        if not isinstance(coco[key], list):
            raise InvalidDatasetError(f"{path}: '{key}' is a {type(coco[key]).__name__}, expected a list")
        for i, rec in enumerate(coco[key]):
            if not isinstance(rec, dict):
                raise InvalidDatasetError(f"{path}: {key}[{i}] is a {type(rec).__name__}, expected an object")
    other = _other_kind(coco["annotations"])
    if other:
        raise InvalidDatasetError(f"{path}: not an instance-segmentation file: {other}")
    return coco


def _other_kind(annotations: list[dict[str, Any]]) -> str | None:
    """What a COCO file of another task holds instead of instances (panoptic, captions), or None."""
    if any("segments_info" in a for a in annotations):
        return "a COCO panoptic file (annotations hold 'segments_info' and a PNG per image); convert it to instances"
    if annotations and all("caption" in a and not a.get("segmentation") for a in annotations):
        return "a COCO captions file (annotations hold 'caption', no segmentation)"
    return None


def write_coco_json(path: str | os.PathLike[str], coco: dict[str, Any]) -> None:
    """Write a COCO dict atomically, every field kept, deterministic bytes.

    Raises:
        InvalidDatasetError: the dict holds NaN or infinite numbers, which JSON cannot carry.
    """
    try:
        atomic_write_json(path, coco)
    except ValueError as exc:
        raise InvalidDatasetError(f"{path}: cannot be written as JSON ({exc})") from None

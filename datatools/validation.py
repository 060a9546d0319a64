"""``validate_dataset``: the API behind ``datatools validate``."""

from __future__ import annotations

import os
from dataclasses import dataclass

from datatools.core.coco import read_coco_json
from datatools.core.dataset import resolve_input
from datatools.core.issues import Issue
from datatools.core.paths import require_folder
from datatools.core.validate import validate_records
from datatools.core.validate_files import validate_files

__all__ = ["ValidationResult", "validate_dataset"]


@dataclass(frozen=True)
class ValidationResult:
    """Every issue of a dataset, and the files it was read from."""

    annotations: str
    images: str
    issues: list[Issue]


def validate_dataset(
    ann: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    *,
    decode: bool = True,
    workers: int | None = None,
    progress: bool = False,
) -> ValidationResult:
    """Find every problem of a dataset (records, then image files).

    Args:
        ann: COCO json (with ``images``), or use ``data``.
        images: image root.
        data: dataset folder written by datatools.
        decode: decode every image fully (finds truncated files); otherwise headers only.
        workers: processes for the file checks.
        progress: show a progress bar.

    Returns:
        The issues, records first, then files.

    Raises:
        UnreadableFileError, InvalidDatasetError: the annotation file cannot be read as COCO at all.

    Example:
        >>> result = validate_dataset("train.json", "images/")
        >>> [i.code for i in result.issues if i.severity == "error"]
        []
    """
    ann, images = resolve_input(ann, images, data)
    require_folder(images)
    coco = read_coco_json(ann)
    issues = validate_records(coco, str(ann))
    issues += validate_files(coco, images, decode=decode, workers=workers, progress=progress)
    return ValidationResult(str(ann), str(images), issues)

"""Writing the datasets ``datatools edit`` makes: ``annotations.json`` and ``images/``, all or nothing."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatools.core.atomic import atomic_write_json, output_dir
from datatools.core.coco import write_coco_json
from datatools.core.dataset import ANNOTATIONS_FILE, IMAGES_DIR

__all__ = ["NewDataset", "write_datasets"]

SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class NewDataset:
    """One dataset to write: the COCO dict and, per image record (same order), the file to copy.

    Attributes:
        coco: the COCO dict, every field kept.
        files: the source file of each ``coco["images"]`` record.
    """

    coco: dict[str, Any]
    files: Sequence[Path]


def _write_one(folder: Path, ds: NewDataset) -> None:
    (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    for img, src in zip(ds.coco["images"], ds.files, strict=True):
        dst = folder / IMAGES_DIR / str(img["file_name"])
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, dst)
    write_coco_json(folder / ANNOTATIONS_FILE, ds.coco)


def write_datasets(out: str | os.PathLike[str], datasets: Mapping[str, NewDataset], summary: dict[str, Any], *,
                   overwrite: bool = False, extra: Callable[[Path], None] | None = None) -> Path:
    """Write one dataset folder per entry (``""``: ``out`` itself) and ``summary.json``, all or nothing;
    ``extra`` writes any other file into the staging folder.

    Example:
        >>> write_datasets("edited/", {"": NewDataset(coco, files)}, {"images": len(files)})
    """
    with output_dir(out, overwrite) as tmp:
        for name, ds in datasets.items():
            _write_one(tmp / name if name else tmp, ds)
        atomic_write_json(tmp / SUMMARY_FILE, summary, indent=1)
        if extra is not None:
            extra(tmp)
    return Path(out)

"""The functions behind ``datatools edit``: read datasets, edit their records, write NEW dataset folders.

Each writes ``annotations.json`` + ``images/`` (the image files copied under the same relative names) and
``summary.json``; ``split`` writes one such folder per split and ``splits.parquet``. Outputs appear complete or
not at all; inputs are never changed.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datatools.core.atomic import check_output_dir
from datatools.core.dataset import Dataset
from datatools.edit.classes import ClassEdit, ClassesResult, edit_classes
from datatools.edit.merge import MergeResult, merge_datasets
from datatools.edit.split import SplitResult
from datatools.edit.subset import Selection, select_images
from datatools.edit.write import NewDataset, write_datasets

__all__ = ["SPLITS_FILE", "write_classes", "write_merge", "write_split", "write_subset"]

SPLITS_FILE = "splits.parquet"


def _files(ds: Dataset) -> list[Path]:
    return [ds.image_path(img) for img in ds.images]


def write_classes(ds: Dataset, out: str | os.PathLike[str], edit: ClassEdit, *,
                  overwrite: bool = False) -> ClassesResult:
    """Edit the classes of ``ds`` (see :func:`~datatools.edit.classes.edit_classes`) and write the new dataset.

    Example:
        >>> r = write_classes(Dataset.open(data="ds/"), "ds_edited/", ClassEdit(drop_empty=True))
        >>> r.summary["placeholder_removed"]
        ['medical-waste']
    """
    check_output_dir(out, overwrite)
    result = edit_classes(ds.coco, edit, ds.source)
    write_datasets(out, {"": NewDataset(result.coco, _files(ds))}, {"source": str(ds.source), **result.summary},
                   overwrite=overwrite)
    return result


def write_merge(datasets: Sequence[Dataset], out: str | os.PathLike[str], *, overwrite: bool = False
                ) -> MergeResult:
    """Merge ``datasets`` (see :func:`~datatools.edit.merge.merge_datasets`) and write the result.

    Example:
        >>> m = write_merge([Dataset.open(data="a/"), Dataset.open(data="b/")], "ab/")
    """
    check_output_dir(out, overwrite)
    result = merge_datasets(datasets)
    write_datasets(out, {"": NewDataset(result.coco, result.files)}, result.summary, overwrite=overwrite)
    return result


def write_subset(ds: Dataset, out: str | os.PathLike[str], selection: Selection, *,
                 overwrite: bool = False) -> dict[str, Any]:
    """Write the images ``selection`` keeps (see :func:`~datatools.edit.subset.select_images`); returns the summary.

    Example:
        >>> write_subset(ds, "syringes/", Selection(classes=("syringe",)))["images"]  # the bundled example
        26
    """
    check_output_dir(out, overwrite)
    sub = ds.subset(select_images(ds, selection))
    summary = {"source": str(ds.source), "selection": selection.params(), "images": len(sub.images),
               "images_before": len(ds.images), "annotations": len(sub.annotations)}
    write_datasets(out, {"": NewDataset(sub.coco, _files(sub))}, summary, overwrite=overwrite)
    return summary


def write_split(ds: Dataset, out: str | os.PathLike[str], result: SplitResult, *, overwrite: bool = False) -> Path:
    """Write one dataset folder per split (``out/train``, ``out/valid`` ...), ``splits.parquet`` (image_id,
    file_name, group, split) and ``summary.json``.

    Example:
        >>> write_split(ds, "splits/", split_by_ratio(ds, parse_ratios("0.8,0.1,0.1")))
    """
    import pandas as pd

    check_output_dir(out, overwrite)
    parts = {}
    for s, name in enumerate(result.names):
        sub = ds.subset([img["id"] for img, k in zip(ds.images, result.split, strict=True) if k == s])
        parts[name] = NewDataset(sub.coco, _files(sub))
    table = pd.DataFrame({"image_id": [img["id"] for img in ds.images],
                          "file_name": [str(img["file_name"]) for img in ds.images],
                          "group": result.groups,
                          "split": [result.names[k] if k >= 0 else "" for k in result.split]})
    return write_datasets(out, parts, {"source": str(ds.source), **result.summary}, overwrite=overwrite,
                          extra=lambda tmp: table.to_parquet(tmp / SPLITS_FILE, index=False))

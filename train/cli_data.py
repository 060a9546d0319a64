"""The datasets of ``datatools train`` commands: one dataset (--ann/--images or --data), its folds split, the
validation set of --val-ann/--val-images/--val-data. No torch here."""

from __future__ import annotations

from pathlib import Path

from datatools.cli._common import open_dataset
from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError

__all__ = ["open_data", "split_folds", "validation_set"]


def open_data(ann: Path | None, images: Path | None, data: Path | None, skip_invalid: bool = False,
              progress: bool = True) -> Dataset:
    """The dataset of --ann/--images or --data (:func:`datatools.cli._common.open_dataset`)."""
    return open_dataset(ann, images, data, skip_invalid=skip_invalid, progress=progress)


def split_folds(ds: Dataset, folds: Path | None, fold: int, partial: bool = False) -> tuple[Dataset, Dataset | None]:
    """``(train, validation)`` from a folds table that belongs to ``ds``, or ``(ds, None)`` without one."""
    if folds is None:
        return ds, None
    from datatools.core.folds_table import fold_image_ids, read_folds_for

    train_ids, val_ids = fold_image_ids(read_folds_for(folds, ds, partial=partial), fold, folds)
    train, val = ds.subset(train_ids), ds.subset(val_ids)
    if not train.images or not val.images:
        raise DatatoolsError(f"{folds}: fold {fold} leaves {len(train.images)} training and {len(val.images)} "
                             f"validation images of {ds.source}")
    return train, val


def validation_set(val_ann: Path | None, val_images: Path | None, val_data: Path | None,
                   progress: bool) -> Dataset | None:
    """The validation dataset of --val-ann/--val-images or --val-data, or None when none is given."""
    if val_ann is None and val_images is None and val_data is None:
        return None
    return open_data(val_ann, val_images, val_data, progress=progress)

"""The folds table every command shares: ``folds.parquet`` with one row per image.

Columns: ``image_id`` (the COCO image id, int64), ``file_name`` (str), ``group`` (str: the images of one group
are never split), ``fold`` (int64, 0..k-1). ``datatools folds`` writes it; every reader (``eda --folds``,
``folds check``, ``augment``, ``train fit|evaluate|soup``) reads it with :func:`read_folds_for`, which checks that the
table belongs to the dataset at hand (:func:`check_belongs`), and picks images with :func:`fold_image_ids`.

A table belongs to a dataset when every image id of the table is an image of the dataset with the same
``file_name``, and every image of the dataset is in the table. With ``partial`` (``--partial-folds``) the two may
hold different images, as long as they share some and the shared ones agree on their file names: the images in
both are used, the others are not.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatools.core.errors import InvalidDatasetError, UnreadableFileError

if TYPE_CHECKING:
    import pandas as pd

    from datatools.core.dataset import Dataset

__all__ = ["FOLD_COLUMNS", "FoldsMismatchError", "check_belongs", "fold_image_ids", "read_folds", "read_folds_for",
           "read_table_file"]

FOLD_COLUMNS = ("image_id", "file_name", "group", "fold")


def read_table_file(path: str | os.PathLike[str], what: str) -> pd.DataFrame:
    """Read a parquet table a datatools command wrote (a folds or a findings table); ``what`` names it in errors.

    Raises:
        UnreadableFileError: missing or not parquet.
    """
    import pandas as pd

    try:
        return pd.read_parquet(path)
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: {what} file not found") from None
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise UnreadableFileError(f"{path}: not a readable parquet file ({exc})") from None


def read_folds(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check a folds table.

    Raises:
        UnreadableFileError: missing or not parquet.
        InvalidDatasetError: columns missing, an image listed twice, or a group split across folds.
    """
    path = Path(path)
    table = read_table_file(path, "folds")
    missing = [c for c in FOLD_COLUMNS if c not in table.columns]
    if missing:
        raise InvalidDatasetError(f"{path}: folds table lacks column(s) {', '.join(missing)}")
    if table["image_id"].duplicated().any():
        dup = table.loc[table["image_id"].duplicated(), "image_id"].iloc[0]
        raise InvalidDatasetError(f"{path}: image id {dup} is listed twice")
    split = table.groupby("group")["fold"].nunique()
    if (split > 1).any():
        raise InvalidDatasetError(f"{path}: group {split[split > 1].index[0]!r} is split across folds")
    return table


def fold_image_ids(table: pd.DataFrame, fold: int, path: Any = "folds table") -> tuple[set[Any], set[Any]]:
    """``(train image ids, validation image ids)`` of fold ``fold``.

    Raises:
        InvalidDatasetError: the fold does not exist.
    """
    folds = sorted(int(f) for f in table["fold"].unique())
    if fold not in folds:
        raise InvalidDatasetError(f"{path}: fold {fold} does not exist (folds: {folds})")
    val = table["fold"] == fold
    return set(table.loc[~val, "image_id"].tolist()), set(table.loc[val, "image_id"].tolist())


class FoldsMismatchError(InvalidDatasetError):
    """The folds table was made for another dataset, or covers only part of it without ``partial``."""


def check_belongs(table: pd.DataFrame, ds: Dataset, path: Any = "folds table", *, partial: bool = False) -> None:
    """Refuse a folds table that does not belong to ``ds`` (see the module docstring).

    Args:
        table: a table from :func:`read_folds`.
        ds: the dataset the command reads.
        path: the table's file, for messages.
        partial: allow a table and a dataset that hold different images (``--partial-folds``).

    Raises:
        FoldsMismatchError: an image id names another file, no image is shared, or (without ``partial``) the
            table and the dataset do not hold the same images.

    Example:
        >>> check_belongs(read_folds("folds/folds.parquet"), Dataset.load("train.json", "train/"))
    """
    names = {img["id"]: str(img["file_name"]) for img in ds.images}
    ids = table["image_id"].tolist()
    files = [str(f) for f in table["file_name"].tolist()]
    shared = 0
    for image_id, name in zip(ids, files, strict=True):
        if image_id not in names:
            continue
        shared += 1
        if names[image_id] != name:
            raise FoldsMismatchError(
                f"{path}: the folds table was made for another dataset: image id {image_id} is {name!r} in the "
                f"table but {names[image_id]!r} in {ds.source}")
    if ids and names and not shared:
        raise FoldsMismatchError(f"{path}: the folds table was made for another dataset: none of its {len(ids)} "
                                 f"image ids is an image of {ds.source}")
    if partial:
        return
    listed = set(ids)
    unlisted = [i for i in names if i not in listed]
    extra = [i for i in ids if i not in names]
    if unlisted or extra:
        parts = []
        if unlisted:
            parts.append(f"{len(unlisted)} of the {len(names)} images of {ds.source} are not in it "
                         f"(first: id {unlisted[0]})")
        if extra:
            parts.append(f"{len(extra)} of its {len(ids)} rows are not images of the dataset (first: id {extra[0]})")
        raise FoldsMismatchError(f"{path}: the folds table covers only part of the dataset: {'; '.join(parts)}; "
                                 "give --partial-folds to use only the images in both")


def read_folds_for(path: str | os.PathLike[str], ds: Dataset, *, partial: bool = False) -> pd.DataFrame:
    """Read a folds table and check that it belongs to ``ds``: what every command that takes ``--folds`` calls.

    Args:
        path: ``folds.parquet``.
        ds: the dataset the command reads.
        partial: allow a table that covers only part of ``ds`` (or lists images ``ds`` lacks).

    Returns:
        The whole table (with ``partial``, rows of images ``ds`` lacks included: select by id).

    Raises:
        UnreadableFileError, InvalidDatasetError: as :func:`read_folds`.
        FoldsMismatchError: as :func:`check_belongs`.

    Example:
        >>> table = read_folds_for("folds/folds.parquet", ds)
        >>> train_ids, val_ids = fold_image_ids(table, 0, "folds/folds.parquet")
    """
    table = read_folds(path)
    check_belongs(table, ds, path, partial=partial)
    return table

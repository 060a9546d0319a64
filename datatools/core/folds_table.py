"""The folds table every command shares: ``folds.parquet`` with one row per image.

Columns: ``image_id`` (the COCO image id, int64), ``file_name`` (str), ``group`` (str: the images of one group
are never split), ``fold`` (int64, 0..k-1). ``datatools folds`` writes it; ``eda``, ``augment`` and ``train``
read it with :func:`read_folds` and pick images with :func:`fold_image_ids`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from datatools.core.errors import InvalidDatasetError, UnreadableFileError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FOLD_COLUMNS", "fold_image_ids", "read_folds"]

FOLD_COLUMNS = ("image_id", "file_name", "group", "fold")


def read_folds(path: str | os.PathLike[str]) -> pd.DataFrame:
    """Read and check a folds table.

    Raises:
        UnreadableFileError: missing or not parquet.
        InvalidDatasetError: columns missing, an image listed twice, or a group split across folds.
    """
    import pandas as pd

    path = Path(path)
    try:
        table = pd.read_parquet(path)
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: folds file not found") from None
    except Exception as exc:  # pyarrow raises several types for a file that is not parquet
        raise UnreadableFileError(f"{path}: not a readable parquet file ({exc})") from None
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

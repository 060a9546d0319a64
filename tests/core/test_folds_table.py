from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.core.folds_table import fold_image_ids, read_folds


def _write(tmp_path: Path, **overrides) -> Path:
    data = {"image_id": [1, 2, 3, 4], "file_name": list("abcd"), "group": ["g1", "g1", "g2", "g3"],
            "fold": [0, 0, 1, 1]}
    data.update(overrides)
    path = tmp_path / "folds.parquet"
    pd.DataFrame(data).to_parquet(path)
    return path


def test_read_and_split(tmp_path: Path) -> None:
    table = read_folds(_write(tmp_path))
    assert fold_image_ids(table, 1) == ({1, 2}, {3, 4})
    with pytest.raises(InvalidDatasetError, match="fold 5 does not exist"):
        fold_image_ids(table, 5)


def test_bad_tables(tmp_path: Path) -> None:
    with pytest.raises(InvalidDatasetError, match="split across folds"):
        read_folds(_write(tmp_path, fold=[0, 1, 1, 1]))
    with pytest.raises(InvalidDatasetError, match="listed twice"):
        read_folds(_write(tmp_path, image_id=[1, 1, 3, 4]))
    (tmp_path / "x.parquet").write_text("nope")
    with pytest.raises(UnreadableFileError, match="not a readable parquet"):
        read_folds(tmp_path / "x.parquet")

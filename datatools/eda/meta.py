"""Image meta data for ``datatools eda --meta``: read it, match it to images, relate it to the classes.

A meta table (CSV or Excel) has one row per image or per subject, identified by ``--meta-key``. A key matches
an image by its id, file name, file stem, folder, or ``images[].attributes.folder`` (whichever matches the
most images), and numbers match zero-padded names (``1`` matches ``ID001``).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from datatools.core.errors import InvalidDatasetError, UnreadableFileError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MetaAnalysis", "MetaColumn", "analyse_meta", "match_meta", "read_meta"]

#: A numeric column with at most this many distinct values is shown as categories.
MAX_CATEGORIES = 12
#: Columns with more distinct values than this, or than half their values, are identifiers or free text: skipped.
MAX_TEXT_CATEGORIES = 30
_DIGITS = re.compile(r"^\D*?0*(\d+)$")


def read_meta(path: str | os.PathLike[str], key: str) -> pd.DataFrame:
    """Read a meta table (``.csv``, ``.tsv``, ``.xlsx``/``.xls``) and check that ``key`` is one of its columns.

    Raises:
        UnreadableFileError: missing or not readable as a table.
        InvalidDatasetError: ``key`` is not a column, or a key repeats.

    Example:
        >>> meta = read_meta("meta_data.xlsx", "ID")
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"{path}: meta file not found")
    suffix = path.suffix.lower()
    try:
        if suffix in (".xlsx", ".xls", ".xlsm"):
            table = pd.read_excel(path)
        elif suffix == ".tsv":
            table = pd.read_csv(path, sep="\t")
        else:
            table = pd.read_csv(path)
    except ImportError as exc:
        raise UnreadableFileError(f"{path}: reading Excel needs openpyxl ({exc})") from None
    except Exception as exc:  # pandas raises many types for a file that is not a table
        raise UnreadableFileError(f"{path}: not a readable table ({exc})") from None
    table.columns = [str(c).strip() for c in table.columns]
    if key not in table.columns:
        raise InvalidDatasetError(f"{path}: no column {key!r} (--meta-key); columns: {', '.join(table.columns)}")
    keys = table[key].dropna()
    if keys.duplicated().any():
        raise InvalidDatasetError(f"{path}: key {keys[keys.duplicated()].iloc[0]!r} appears twice in {key!r}")
    return table


def _norm(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip().lower()


def _number(text: str) -> int | None:
    m = _DIGITS.match(text)
    return int(m.group(1)) if m else None


def _image_keys(image: dict[str, Any]) -> dict[str, str]:
    name = PurePosixPath(str(image.get("file_name", "")))
    attrs = image.get("attributes") if isinstance(image.get("attributes"), dict) else {}
    keys = {"id": _norm(image.get("id")), "file_name": _norm(name), "name": _norm(name.name),
            "stem": _norm(name.name.split(".")[0]), "folder": _norm(name.parent.name)}
    if attrs and "folder" in attrs:
        keys["attributes.folder"] = _norm(attrs["folder"])
    return keys


def match_meta(images: Sequence[dict[str, Any]], keys: Sequence[Any]) -> tuple[list[int | None], str]:
    """The meta row of each image (``None`` when none matches) and how keys were matched.

    Example:
        >>> match_meta([{"id": 10, "file_name": "ID001/a.png"}], [1, 2])
        ([0], 'folder (by number)')
    """
    exact = {_norm(k): i for i, k in enumerate(keys) if k is not None and k == k}
    numeric = {n: i for k, i in exact.items() if (n := _number(k)) is not None}
    per_image = [_image_keys(img) for img in images]
    kinds = list(dict.fromkeys(k for keys_ in per_image for k in keys_))
    best: tuple[int, str, list[int | None]] = (0, "none", [None] * len(images))
    for kind in kinds:
        for by_number in (False, True):
            rows: list[int | None] = []
            for keys_ in per_image:
                text = keys_.get(kind, "")
                if by_number:
                    n = _number(text)
                    rows.append(numeric.get(n) if n is not None else None)
                else:
                    rows.append(exact.get(text))
            hits = sum(r is not None for r in rows)
            if hits > best[0]:
                best = (hits, kind + (" (by number)" if by_number else ""), rows)
    return best[2], best[1]


@dataclass(frozen=True)
class MetaColumn:
    """One meta column: numeric (histogram, rank correlation with class shares) or categorical (counts, class
    presence per category)."""

    name: str
    kind: str  # "numeric" | "categorical"
    values: list[Any]  # per image (None when the image has no meta row or the cell is empty)
    categories: list[str] = field(default_factory=list)
    relation: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros((0, 0)))  # see MetaAnalysis


@dataclass(frozen=True)
class MetaAnalysis:
    """Meta columns matched to images.

    ``relation`` of a numeric column is (1, K): Spearman correlation of the value with each class's pixel share
    per image; of a categorical column (C, K): share of that category's images that contain each class.
    """

    path: str
    key: str
    matched_by: str
    matched: int
    rows: int
    columns: list[MetaColumn]
    skipped: list[str]

    def summary(self) -> dict[str, Any]:
        return {"file": self.path, "key": self.key, "matched_by": self.matched_by, "matched_images": self.matched,
                "meta_rows": self.rows, "columns": {c.name: c.kind for c in self.columns}, "skipped": self.skipped}


def _spearman(x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> float:
    import pandas as pd

    ok = ~(np.isnan(x) | np.isnan(y))
    if ok.sum() < 3 or np.ptp(x[ok]) == 0 or np.ptp(y[ok]) == 0:
        return float("nan")
    rx = pd.Series(x[ok]).rank().to_numpy()
    ry = pd.Series(y[ok]).rank().to_numpy()
    return float(np.corrcoef(rx, ry)[0, 1])


def analyse_meta(path: str | os.PathLike[str], table: pd.DataFrame, key: str, images: Sequence[dict[str, Any]],
                 class_px: npt.NDArray[np.int64], present: npt.NDArray[np.bool_]) -> MetaAnalysis:
    """Match the meta table to the images and relate each column to the classes.

    Args:
        path: the meta file (for messages).
        table: from :func:`read_meta`.
        key: the key column.
        images: image records.
        class_px: (N, K + 2) per-image pixel counts.
        present: (N, K) whether each image has an annotation of each class.

    Example:
        >>> meta = analyse_meta("meta.csv", read_meta("meta.csv", "ID"), "ID", ds.images, class_px, present)
    """
    import pandas as pd

    rows, how = match_meta(images, table[key].tolist())
    matched = sum(r is not None for r in rows)
    k = present.shape[1]
    shares = class_px[:, 1: k + 1] / np.maximum(class_px.sum(axis=1, keepdims=True), 1)
    columns: list[MetaColumn] = []
    skipped: list[str] = []
    for name in table.columns:
        if name == key:
            continue
        series = table[name]
        cells = [series.iloc[r] if r is not None else None for r in rows]
        values = [None if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NaT else v for v in cells]
        numeric = pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)
        if numeric and series.nunique() > MAX_CATEGORIES:
            x = np.array([np.nan if v is None else float(v) for v in values])
            rel = np.array([[_spearman(x, shares[:, c]) for c in range(k)]])
            columns.append(MetaColumn(str(name), "numeric", [None if v is None else float(v) for v in values],
                                      relation=rel))
        elif series.nunique() <= min(MAX_TEXT_CATEGORIES, max(2, series.count() // 2)):
            # few distinct values: categories (a column of mostly unique values is an identifier or free text)
            texts = [None if v is None else _norm(v) if isinstance(v, float) else str(v).strip() for v in values]
            counts: dict[str, int] = {}
            for t in texts:
                if t is not None:
                    counts[t] = counts.get(t, 0) + 1
            cats = sorted(counts, key=lambda c: (-counts[c], c))[:MAX_CATEGORIES]
            rel = np.array([present[[t == c for t in texts]].mean(axis=0) for c in cats]).reshape(len(cats), k)
            columns.append(MetaColumn(str(name), "categorical", texts, cats, rel))
        else:
            skipped.append(str(name))
    return MetaAnalysis(str(path), key, how, matched, len(table), columns, skipped)

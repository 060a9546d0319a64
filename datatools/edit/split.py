"""``edit split``: train / valid (/ test) datasets by ratio, or by a fold of an existing folds table.

By ratio, the split is made by the folds machinery itself (:func:`datatools.folds.api.assign_folds`: the same
groups, provenance links and class-stratified group assignment): the ratios are written as whole parts of ``k``
(``0.8,0.1,0.1`` is 8:1:1, k = 10), the dataset is cut into ``k`` folds, and each split takes its number of folds.
Every fold wants ``1/k`` of each class, so each split gets its share of each class, and no group is cut. Ratios
must be multiples of ``1/20`` (at most 20 folds).
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError
from datatools.core.folds_table import fold_image_ids, read_folds_for
from datatools.folds.api import FoldConfig, assign_folds
from datatools.folds.balance import max_share_deviation
from datatools.folds.labels import image_labels

__all__ = ["MAX_PARTS", "SplitResult", "parse_ratios", "split_by_fold", "split_by_ratio"]

MAX_PARTS = 20
DEFAULT_NAMES = ("train", "valid", "test")


def parse_ratios(text: str) -> tuple[int, ...]:
    """``0.8,0.1,0.1`` (or ``80,10,10``, ``8,1,1``) -> whole parts ``(8, 1, 1)`` of the smallest k <= 20.

    Raises:
        ValueError: fewer than 2 or more than 3 values, a value not positive, or shares that are not
            multiples of 1/20.

    Example:
        >>> parse_ratios("0.7,0.15,0.15")
        (14, 3, 3)
    """
    try:
        values = [Fraction(v.strip()) for v in text.split(",")]
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"expected 2 or 3 comma-separated numbers, got {text!r}") from None
    if len(values) not in (2, 3) or min(values) <= 0:
        raise ValueError(f"expected 2 or 3 positive numbers (train,valid[,test]), got {text!r}")
    shares = [v / sum(values) for v in values]
    for k in range(2, MAX_PARTS + 1):
        if all((s * k).denominator == 1 for s in shares):
            return tuple(int(s * k) for s in shares)
    raise ValueError(f"the shares of {text!r} must be multiples of 1/{MAX_PARTS} (5%), e.g. 0.8,0.1,0.1 or "
                     "0.7,0.15,0.15")


@dataclass
class SplitResult:
    """Which split each image goes to.

    Attributes:
        names: the split names, in order.
        split: (N,) split index of each image (``ds.images`` order); -1 for images in no split.
        groups: the group of each image (never cut between splits).
        summary: images, groups and class shares per split, the largest share deviation, warnings.
    """

    names: tuple[str, ...]
    split: npt.NDArray[np.int64]
    groups: list[str]
    summary: dict[str, Any]


def _shares(ds: Dataset, names: Sequence[str], split: npt.NDArray[np.int64], presence: npt.NDArray[np.bool_],
            class_names: Sequence[str], groups: Sequence[str]) -> dict[str, Any]:
    rows = {}
    for s, name in enumerate(names):
        sel = split == s
        rows[name] = {"images": int(sel.sum()), "groups": len({g for g, m in zip(groups, sel, strict=True) if m}),
                      "image_share": {c: round(float(presence[sel, j].mean()), 6) if sel.any() else 0.0
                                      for j, c in enumerate(class_names)}}
    used = split >= 0
    missing = [f"class {c!r} is in no image of split {names[s]!r}" for j, c in enumerate(class_names)
               if presence[used, j].any() for s in range(len(names)) if not presence[split == s, j].any()]
    return {"splits": rows, "max_image_share_dev": round(max_share_deviation(presence[used], split[used],
                                                                              len(names)), 6),
            "warnings": missing}


def split_by_ratio(ds: Dataset, parts: Sequence[int], names: Sequence[str] | None = None,
                   config: FoldConfig | None = None, *, workers: int | None = None,
                   progress: bool = False) -> SplitResult:
    """Assign every image to a split, ``parts[i] / sum(parts)`` of the images (and of each class) to split i.

    Args:
        ds: the dataset.
        parts: whole parts per split (:func:`parse_ratios`).
        names: split names (default train, valid, test).
        config: the folds configuration (grouping, stratification, seed); its ``k`` is replaced by
            ``sum(parts)``.
        workers: processes for per-image work (hashing, rasterising).
        progress: show progress bars.

    Raises:
        DatatoolsError: fewer groups than ``sum(parts)``, or a grouping that cannot be computed.

    Example:
        >>> ds = Dataset.load("examples/medical_waste/train/_annotations.coco.json", "examples/medical_waste/train")
        >>> r = split_by_ratio(ds, parse_ratios("0.6,0.2,0.2"))
        >>> [r.summary["splits"][name]["images"] for name in r.names]
        [27, 9, 9]
    """
    names = tuple(names or DEFAULT_NAMES[: len(parts)])
    base = config or FoldConfig()
    k = int(sum(parts))
    cfg = FoldConfig(k=k, seed=base.seed, stratify=base.stratify, group_by=base.group_by,
                     pixel_source=base.pixel_source, max_distance=base.max_distance, refine=base.refine,
                     provenance=base.provenance)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            a = assign_folds(ds, cfg, workers=workers, progress=progress)
        except DatatoolsError as exc:
            if "cannot make" in str(exc):
                raise DatatoolsError(f"{ds.source}: the ratios need {k} equal parts, but {exc}".replace(
                    "; lower k or group less", "; give coarser ratios or group less")) from None
            raise
    bounds = np.cumsum(parts)
    split = np.searchsorted(bounds, a.folds, side="right").astype(np.int64)
    groups = [str(g) for g in a.table["group"].tolist()]
    summary = {"ratios": [int(p) for p in parts], "folds_k": k, "seed": cfg.seed,
               "group_by": [str(s) for s in cfg.specs], "stratify": str(getattr(cfg.stratify, "value", cfg.stratify)),
               **_shares(ds, names, split, a.labels.presence, a.labels.class_names, groups)}
    # the folds' own warnings speak of k validation folds; only the grouping notes apply to the splits
    summary["warnings"] += [str(w.message) for w in caught if "validation fold" not in str(w.message)
                            and "fold's share" not in str(w.message)]
    return SplitResult(names, split, groups, summary)


def split_by_fold(ds: Dataset, folds: str | os.PathLike[str], fold: int, names: Sequence[str] | None = None, *,
                  partial: bool = False) -> SplitResult:
    """``train``: every fold but ``fold``; ``valid``: fold ``fold`` of a folds table made for ``ds`` (other names
    with ``names``).

    Raises:
        FoldsMismatchError: the table was made for another dataset (see :mod:`datatools.core.folds_table`).
        InvalidDatasetError: the fold does not exist.

    Example:
        >>> r = split_by_fold(ds, "folds/folds.parquet", 0)
        >>> r.names
        ('train', 'valid')
    """
    table = read_folds_for(folds, ds, partial=partial)
    train, val = fold_image_ids(table, fold, folds)
    split = np.array([1 if img["id"] in val else 0 if img["id"] in train else -1 for img in ds.images],
                     dtype=np.int64)
    group_of = dict(zip(table["image_id"].tolist(), table["group"].astype(str).tolist(), strict=True))
    groups = [group_of.get(img["id"], "") for img in ds.images]
    labels = image_labels(ds)
    names = tuple(names or DEFAULT_NAMES[:2])
    summary = {"folds": str(folds), "fold": fold,
               **_shares(ds, names, split, labels.presence, labels.class_names, groups)}
    return SplitResult(names, split, groups, summary)

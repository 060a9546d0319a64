"""``make_folds``: the function behind ``datatools folds`` (assign, then write the folds folder)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from datatools.core.atomic import atomic_write_json, output_dir
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.folds_table import FOLD_COLUMNS
from datatools.folds.balance import MEASURES, balance_table, plot_balance
from datatools.folds.groups import GroupSpec, ImageGroups, group_codes, image_groups
from datatools.folds.labels import ImageLabels, PixelSource, Stratify, image_labels
from datatools.folds.phash import DEFAULT_MAX_DISTANCE
from datatools.folds.split import split_groups

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["FOLDS_FILE", "FoldAssignment", "FoldConfig", "FoldsResult", "assign_folds", "make_folds"]

FOLDS_FILE = "folds.parquet"
BALANCE_FILE = "balance.csv"
PLOT_FILE = "balance.png"
SUMMARY_FILE = "summary.json"


@dataclass(frozen=True)
class FoldConfig:
    """What ``datatools folds`` does; strings are accepted wherever an Enum or GroupSpec is expected.

    Attributes:
        k: number of folds (>= 2).
        seed: the same dataset, config and seed give byte-identical outputs.
        stratify: balance per class the images holding it, its instances, or its pixels.
        group_by: groupings whose groups are never split (several combine; none: every image alone).
        pixel_source: pixels from annotation ``area`` fields, or from rasterised masks.
        max_distance: ``duplicates`` grouping: largest pHash distance of near-duplicates (of 64 bits).
        refine: polish the iterative stratification by moving and swapping groups.
        provenance: keep each derived image (``images[].datatools.sources``) in the fold of its sources,
            transitively; False lets them leak (with a warning).

    Example:
        >>> FoldConfig(k=5, seed=42, group_by=("regex:^(.*)_jpg\\\\.rf\\\\.",)).specs[0].kind.value
        'regex'
    """

    k: int = 5
    seed: int = 0
    stratify: Stratify | str = Stratify.PRESENCE
    group_by: Sequence[GroupSpec | str] = ()
    pixel_source: PixelSource | str = PixelSource.AREA
    max_distance: int = DEFAULT_MAX_DISTANCE
    refine: bool = True
    provenance: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "stratify", Stratify(self.stratify))
        object.__setattr__(self, "pixel_source", PixelSource(self.pixel_source))
        specs = (self.group_by,) if isinstance(self.group_by, str | GroupSpec) else self.group_by
        object.__setattr__(self, "group_by", tuple(GroupSpec.parse(s) for s in specs))
        if int(self.k) < 2:
            raise ValueError(f"k must be at least 2, got {self.k}")
        if not 0 <= int(self.max_distance) <= 64:
            raise ValueError(f"max_distance must be 0..64 (bits of a 64-bit hash), got {self.max_distance}")

    @property
    def specs(self) -> tuple[GroupSpec, ...]:
        """``group_by``, parsed."""
        return tuple(GroupSpec.parse(s) for s in self.group_by)


@dataclass(frozen=True)
class FoldAssignment:
    """Folds assigned to the images of a dataset (nothing written yet).

    Attributes:
        table: the folds table (``image_id, file_name, group, fold``), rows in ``ds.images`` order.
        labels: the per-image label vectors the split balanced.
        config: the configuration used.
        n_groups: number of groups.
        warnings: classes that cannot be in every validation fold, grouping notes, a group larger than a fold.
        grouping: the groups and what provenance joined.
    """

    table: pd.DataFrame
    labels: ImageLabels
    config: FoldConfig
    n_groups: int
    warnings: tuple[str, ...] = ()
    grouping: ImageGroups | None = None

    @property
    def folds(self) -> npt.NDArray[np.int64]:
        """(N,) fold of each image."""
        return self.table["fold"].to_numpy(dtype=np.int64)


@dataclass(frozen=True)
class FoldsResult:
    """What :func:`make_folds` wrote.

    Attributes:
        out: the folds folder.
        assignment: the folds.
        balance: the balance table (also ``balance.csv``).
        files: the files written, relative to ``out``.
    """

    out: Path
    assignment: FoldAssignment
    balance: pd.DataFrame
    files: tuple[str, ...] = field(default_factory=tuple)


def _image_ids(ds: Dataset) -> npt.NDArray[np.int64]:
    ids = [img["id"] for img in ds.images]
    if not all(isinstance(i, int | np.integer) and not isinstance(i, bool) for i in ids):
        raise InvalidDatasetError(f"{ds.source}: the folds table needs integer image ids; run "
                                  "`datatools convert coco --reindex` first")
    return np.array(ids, dtype=np.int64)


def assign_folds(
    ds: Dataset, config: FoldConfig | None = None, *, workers: int | None = None, progress: bool = False
) -> FoldAssignment:
    """Assign every image of ``ds`` to one of ``config.k`` validation folds.

    Args:
        ds: the dataset; image files are read only for ``duplicates`` grouping.
        config: the configuration (default ``FoldConfig()``).
        workers: processes for per-image work (hashing, rasterising).
        progress: show progress bars.

    Returns:
        The folds table, labels and warnings. Warnings are also issued with :func:`warnings.warn`.

    Raises:
        DatatoolsError: fewer groups than folds, or a grouping cannot be computed (missing attribute, meta row,
            unreadable image).

    Example:
        >>> xray = Dataset.from_dir("xray/")  # one folder per patient
        >>> a = assign_folds(xray, FoldConfig(k=5, seed=42, group_by=("folder",)))
        >>> a.table.groupby("group")["fold"].nunique().max()
        1
    """
    import pandas as pd

    config = config or FoldConfig()
    ids = _image_ids(ds)
    labels = image_labels(ds, config.pixel_source, workers=workers, progress=progress)
    grouping = image_groups(ds, config.specs, provenance=config.provenance, max_distance=config.max_distance,
                            workers=workers, progress=progress)
    groups = grouping.groups
    codes, _ = group_codes(groups)
    split = split_groups(labels.weights(config.stratify), labels.presence, codes, config.k, seed=config.seed,
                         class_names=labels.class_names, refine=config.refine)
    table = pd.DataFrame({
        "image_id": pd.Series(ids, dtype="int64"),
        "file_name": pd.Series([img["file_name"] for img in ds.images], dtype=object),
        "group": pd.Series(groups, dtype=object),
        "fold": pd.Series(split.folds, dtype="int64"),
    })[list(FOLD_COLUMNS)]
    messages = tuple(grouping.notes) + _grouping_warnings(grouping, codes, config.k) + tuple(split.warnings)
    for message in messages:
        warnings.warn(message, stacklevel=2)
    return FoldAssignment(table, labels, config, split.n_groups, messages, grouping)


def _grouping_warnings(grouping: ImageGroups, codes: npt.NDArray[np.int64], k: int) -> tuple[str, ...]:
    out = []
    if not grouping.provenance:
        out.append(f"provenance ignored: {grouping.derived} derived image(s) may land in another fold than the "
                   "images they were made from (leakage; `datatools folds check` lists the pairs)")
    sizes = np.bincount(codes) if len(codes) else np.zeros(0, dtype=np.int64)
    if len(sizes) and sizes.max() > len(codes) / k:
        big = int(sizes.argmax())
        name = grouping.groups[int(np.flatnonzero(codes == big)[0])]
        text = (f"group {name!r} holds {int(sizes[big])} of {len(codes)} images, more than a fold's share "
                f"(1/{k}): the folds cannot be of equal size")
        if grouping.joined:
            text += ("; provenance joined groups into it (outputs made from images drawn across the dataset, "
                     "e.g. mosaics): make the folds first, then augment each fold's training images "
                     "(`datatools augment ... --folds folds.parquet --fold i`)")
        out.append(text)
    return tuple(out)


def _provenance_summary(grouping: ImageGroups | None) -> dict[str, Any]:
    """How many groups provenance joined (see :class:`~datatools.folds.groups.ImageGroups`)."""
    if grouping is None:
        return {}
    return {"followed": grouping.provenance, "derived_images": grouping.derived,
            "derived_with_sources_outside": grouping.unresolved,
            "groups_without_provenance": grouping.groups_without_provenance, "groups_joined": grouping.joined,
            "joined_into": grouping.joined_into, "groups": grouping.n_groups}


def _summary(ds: Dataset, assignment: FoldAssignment, balance: pd.DataFrame) -> dict[str, Any]:
    config, table = assignment.config, assignment.table
    k = config.k
    return {
        "source": str(ds.source) if ds.source is not None else None,
        "k": k,
        "seed": config.seed,
        "stratify": Stratify(config.stratify).value,
        "group_by": [str(s) for s in config.specs],
        "provenance": _provenance_summary(assignment.grouping),
        "pixel_source": PixelSource(config.pixel_source).value,
        "images": len(table),
        "groups": assignment.n_groups,
        "val_images": [int((table["fold"] == f).sum()) for f in range(k)],
        "val_groups": [int(table.loc[table["fold"] == f, "group"].nunique()) for f in range(k)],
        "max_abs_dev": {p: round(float(balance[p + "_dev"].abs().max()), 6) if len(balance) else 0.0
                        for p, _ in MEASURES},
        "warnings": list(assignment.warnings),
    }


def make_folds(
    ds: Dataset,
    out: str | os.PathLike[str],
    config: FoldConfig | None = None,
    *,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = False,
) -> FoldsResult:
    """Split ``ds`` into k folds and write the folds folder.

    Writes ``folds.parquet`` (see :mod:`datatools.core.folds_table`), ``train_fold{i}.json`` and
    ``val_fold{i}.json`` for each fold (the COCO file with every field kept, restricted to the fold's images),
    ``balance.csv`` and ``balance.png`` (per class and fold, share of images / instances / pixels and deviation from
    the whole dataset) and ``summary.json``. The folder appears complete or not at all.

    Args:
        ds: the dataset.
        out: the folder to write (refused when it exists and is not empty, unless ``overwrite``).
        config: the configuration (default ``FoldConfig()``).
        overwrite: replace a non-empty ``out``.
        workers: processes for per-image work.
        progress: show progress bars.

    Returns:
        The folder, the assignment and the balance table.

    Raises:
        OutputExistsError: ``out`` is not empty and ``overwrite`` is False.
        DatatoolsError: see :func:`assign_folds`.

    Example:
        >>> ds = Dataset.load("train/_annotations.coco.json", "train/", check_files=False)
        >>> result = make_folds(ds, "folds/", FoldConfig(k=5, seed=42, group_by=("duplicates",)))
        >>> sorted(result.files)[:2]
        ['balance.csv', 'balance.png']
    """
    config = config or FoldConfig()
    assignment = assign_folds(ds, config, workers=workers, progress=progress)
    table, k = assignment.table, config.k
    balance = balance_table(assignment.labels, assignment.folds, k)
    files = []
    with output_dir(out, overwrite) as tmp:
        table.to_parquet(tmp / FOLDS_FILE, index=False)
        files.append(FOLDS_FILE)
        for f in range(k):
            val = table["fold"] == f
            for name, ids in ((f"train_fold{f}.json", table.loc[~val, "image_id"]),
                              (f"val_fold{f}.json", table.loc[val, "image_id"])):
                ds.subset(ids.tolist()).write_json(tmp / name)
                files.append(name)
        (tmp / BALANCE_FILE).write_text(balance.to_csv(index=False, float_format="%.6f", lineterminator="\n"),
                                        encoding="utf-8")
        groups = f", groups: {', '.join(str(s) for s in config.specs)}" if config.group_by else ""
        grouping = assignment.grouping
        prov = f"; {grouping.provenance_line()}" if grouping is not None and (grouping.derived or
                                                                              not grouping.provenance) else ""
        plot_balance(balance, tmp / PLOT_FILE, k=k, title=f"{len(table)} images, k={k}, "
                     f"stratify={Stratify(config.stratify).value}{groups}, seed={config.seed}{prov}")
        atomic_write_json(tmp / SUMMARY_FILE, _summary(ds, assignment, balance), indent=2)
        files += [BALANCE_FILE, PLOT_FILE, SUMMARY_FILE]
    return FoldsResult(Path(out), assignment, balance, tuple(files))

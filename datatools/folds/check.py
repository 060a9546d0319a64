"""``folds check``: audit any split for leakage between training and validation, and for class coverage.

A leak is a pair of images on opposite sides (different folds of a folds table, or the train and val files)
that are one image in truth:

* ``same-file``: the same ``file_name`` under the same image root;
* ``exact-duplicate``: files with identical bytes (needs the images);
* ``provenance``: an image made by ``datatools augment`` and an image it was made from, directly or through other
  images (``images[].datatools.sources``), or two images made from one source that is not in the split (needs
  the annotations); the detail names the ops, e.g. ``provenance: flip of copy-paste of it``;
* ``near-duplicate``: perceptual hashes within ``max_distance`` bits, flips and 90-degree rotations included, so
  a re-encoded, resized, flipped or rotated copy under another name is found (needs the images);
* ``group``: the same group (the folds table's ``group`` column, or a ``--group-by`` grouping).

Coverage: classes held by training images but by no validation image of a fold (and the reverse).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.core.folds_table import check_belongs, read_folds
from datatools.core.paths import resolve_under
from datatools.folds.groups import GroupKind, GroupSpec, image_groups
from datatools.folds.labels import image_labels
from datatools.folds.phash import DEFAULT_MAX_DISTANCE, hamming_pairs, hash_files
from datatools.folds.provenance import Provenance, read_provenance

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["CheckReport", "Leak", "check_folds", "check_train_val"]

#: Leak kinds from the most to the least certain; a pair found several ways is listed under the first.
LEAK_KINDS = ("same-file", "exact-duplicate", "provenance", "near-duplicate", "group")


@dataclass(frozen=True)
class Leak:
    """One pair of images on opposite sides of a split that should not be.

    Attributes:
        kind: the strongest reason (see :data:`LEAK_KINDS`).
        a_side, b_side: ``"fold 3"``, ``"train"`` or ``"val"``.
        a_id, b_id: image ids.
        a_file, b_file: file names.
        detail: every reason found, e.g. ``near-duplicate (distance 2); group 'img3'``.
    """

    kind: str
    a_side: str
    a_id: Any
    a_file: str
    b_side: str
    b_id: Any
    b_file: str
    detail: str

    def line(self) -> str:
        """One line for people."""
        return (f"{self.kind}: {self.a_side} id {self.a_id} {self.a_file} <-> {self.b_side} id {self.b_id} "
                f"{self.b_file} [{self.detail}]")


@dataclass(frozen=True)
class CheckReport:
    """The audit of a split.

    Attributes:
        leaks: every leaking pair.
        coverage: one line per class missing from a validation (or training) side that the other side holds.
        notes: what was not checked, and why.
        images: images audited.
        parts: folds (or 2 for train/val).
    """

    leaks: tuple[Leak, ...]
    coverage: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    images: int = 0
    parts: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """No leak found (coverage gaps are reported but are not leaks)."""
        return not self.leaks


@dataclass
class _Universe:
    ids: list[Any]
    files: list[str]
    part: npt.NDArray[np.int64]  # fold, or 0 train / 1 val
    side_names: list[str]
    paths: list[Path] | None = None
    same_root: bool = True
    groupings: list[tuple[str, list[str]]] = field(default_factory=list)
    presence: npt.NDArray[np.bool_] | None = None
    class_names: tuple[str, ...] = ()
    provenance: Provenance | None = None
    notes: list[str] = field(default_factory=list)


def _specs(group_by: Sequence[GroupSpec | str]) -> list[GroupSpec]:
    specs = [GroupSpec.parse(s) for s in group_by]
    if any(s.kind is GroupKind.DUPLICATES for s in specs):
        raise ValueError("--group-by duplicates is what the near-duplicate check does: give --images instead")
    return specs


def _key_pairs(keys: Sequence[str], part: npt.NDArray[np.int64]) -> list[tuple[int, int, str]]:
    members: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        members.setdefault(key, []).append(i)
    out = []
    for key, idx in members.items():
        if len(idx) < 2 or len({int(part[i]) for i in idx}) < 2:
            continue
        out += [(i, j, key) for n, i in enumerate(idx) for j in idx[n + 1:] if part[i] != part[j]]
    return out


def _audit(u: _Universe, max_distance: int, workers: int | None, progress: bool) -> CheckReport:
    reasons: dict[tuple[int, int], list[tuple[int, str]]] = {}

    def add(i: int, j: int, kind: str, text: str) -> None:
        reasons.setdefault((min(i, j), max(i, j)), []).append((LEAK_KINDS.index(kind), text))

    notes = list(u.notes)
    if u.same_root:
        for i, j, _ in _key_pairs(u.files, u.part):
            add(i, j, "same-file", "same file")
    if u.paths is not None:
        hashes = hash_files(u.paths, workers=workers, progress=progress)
        for i, j, _ in _key_pairs(hashes.sha256, u.part):
            add(i, j, "exact-duplicate", "identical bytes")
        for i, j, dist in hamming_pairs(hashes.phash, max_distance=max_distance):
            if u.part[i] != u.part[j]:
                add(i, j, "near-duplicate", f"near-duplicate (pHash distance {dist})")
    else:
        notes.append("exact and near-duplicate leakage not checked: give --images")
    if u.provenance is not None:
        for i, j, text in _provenance_pairs(u.provenance, u.ids, u.part):
            add(i, j, "provenance", text)
    for name, keys in u.groupings:
        for i, j, key in _key_pairs(keys, u.part):
            add(i, j, "group", f"{name} {key!r}")
    leaks = []
    for (i, j), found in sorted(reasons.items(), key=lambda kv: (min(r for r, _ in kv[1]), kv[0])):
        found.sort()
        a, b = (i, j) if u.part[i] <= u.part[j] else (j, i)
        leaks.append(Leak(LEAK_KINDS[found[0][0]], u.side_names[int(u.part[a])], u.ids[a], u.files[a],
                          u.side_names[int(u.part[b])], u.ids[b], u.files[b], "; ".join(t for _, t in found)))
    counts = {kind: sum(1 for leak in leaks if leak.kind == kind) for kind in LEAK_KINDS}
    coverage = _coverage(u) if u.presence is not None else []
    if u.presence is None:
        notes.append("class coverage not checked: give the annotations (--ann or --data)")
    return CheckReport(tuple(leaks), tuple(coverage), tuple(notes), len(u.ids), len(u.side_names), counts)


def _provenance_pairs(p: Provenance, ids: Sequence[Any], part: npt.NDArray[np.int64]
                      ) -> list[tuple[int, int, str]]:
    """Derived image and ancestor on opposite sides; images made from one outside source on opposite sides."""
    out = []
    ancestors = {i: p.ancestors(i) for i, op in enumerate(p.ops) if op is not None}
    by_root: dict[Any, list[int]] = {}
    for i, found in ancestors.items():
        for a, chain in found.items():
            if part[a] != part[i]:
                out.append((i, a, f"provenance: id {ids[i]} is a {' of '.join(chain)} of id {ids[a]}"))
        for root in p.missing_roots(i):
            by_root.setdefault(root, []).append(i)
    for root, members in by_root.items():
        shown = root[-1] if isinstance(root, tuple) else root  # (file, id) when two files' ids overlap
        for n, i in enumerate(members):
            out += [(i, j, f"provenance: both made from image id {shown}, which is not in the split")
                    for j in members[n + 1:]
                    if part[i] != part[j] and j not in ancestors[i] and i not in ancestors[j]]
    return out


def _coverage(u: _Universe) -> list[str]:
    assert u.presence is not None
    lines = []
    if u.side_names == ["train", "val"]:
        train, val = u.presence[u.part == 0].sum(axis=0), u.presence[u.part == 1].sum(axis=0)
        for c, name in enumerate(u.class_names):
            if train[c] and not val[c]:
                lines.append(f"val: no image of class {name!r} ({train[c]} training images hold it)")
            if val[c] and not train[c]:
                lines.append(f"train: no image of class {name!r} ({val[c]} validation images hold it)")
        return lines
    for f, side in enumerate(u.side_names):
        val = u.presence[u.part == f].sum(axis=0)
        train = u.presence[u.part != f].sum(axis=0)
        for c, name in enumerate(u.class_names):
            if train[c] and not val[c]:
                lines.append(f"{side}: validation has no image of class {name!r} ({train[c]} training images hold it)")
    return lines


def _read_table(path: Path) -> pd.DataFrame:
    import pandas as pd

    try:
        return read_folds(path)
    except InvalidDatasetError as exc:
        if "split across folds" not in str(exc):
            raise
        return pd.read_parquet(path)  # a split group is a leak this audit reports, not a reason to stop


def _beside(path: Path, k: int) -> Dataset | None:
    """The dataset made of the ``val_fold{i}.json`` files written next to a folds table, if all are there."""
    files = [path.parent / f"val_fold{f}.json" for f in range(k)]
    if not all(f.is_file() for f in files):
        return None
    parts = [Dataset.load(f, f.parent, check_files=False) for f in files]
    coco = {**parts[0].coco, "images": [i for p in parts for i in p.images],
            "annotations": [a for p in parts for a in p.annotations]}
    return Dataset(coco, path.parent, files[0])


def _presence_by_id(ds: Dataset, ids: Sequence[Any]) -> tuple[npt.NDArray[np.bool_], tuple[str, ...]]:
    labels = image_labels(ds)
    row = {i: n for n, i in enumerate(labels.image_ids)}
    return labels.presence[[row[i] for i in ids]], labels.class_names


def _image_paths(images: str | os.PathLike[str], files: Sequence[str], path: Path) -> list[Path]:
    """The files of the table under ``images``; all must be there before any is hashed."""
    try:
        paths = [resolve_under(images, f) for f in files]
    except ValueError as exc:
        raise InvalidDatasetError(f"{path}: {exc}") from None
    missing = [f for f, p in zip(files, paths, strict=True) if not p.is_file()]
    if missing:
        raise UnreadableFileError(f"{images}: {len(missing)} of the {len(files)} images of the folds table {path} "
                                  f"are not there (first: {missing[0]}); give the image root of the dataset the "
                                  "table was made for")
    return paths


def check_folds(
    folds: str | os.PathLike[str],
    ds: Dataset | None = None,
    *,
    images: str | os.PathLike[str] | None = None,
    group_by: Sequence[GroupSpec | str] = (),
    max_distance: int = DEFAULT_MAX_DISTANCE,
    workers: int | None = None,
    progress: bool = False,
    partial: bool = False,
) -> CheckReport:
    """Audit a folds table: leaks between any two folds, and classes missing from a validation fold.

    Args:
        folds: ``folds.parquet`` (any tool's, as long as it has the folds-table columns).
        ds: the dataset, for coverage, provenance and ``group_by``; default: the ``val_fold{i}.json`` files beside
            the table.
        images: image root; enables exact and near-duplicate checks.
        group_by: extra groupings to check besides the table's ``group`` column (need ``ds``); not
            ``duplicates``, which is the near-duplicate check.
        max_distance: largest pHash distance of near-duplicates.
        workers: processes for hashing.
        progress: show a progress bar.
        partial: accept a table that covers only part of ``ds`` (``--partial-folds``); only the images in both
            are audited.

    Raises:
        ValueError: ``group_by`` holds ``duplicates``.
        DatatoolsError: unreadable table, images or annotations; an image of the table missing under ``images``.
        FoldsMismatchError: the table does not belong to ``ds`` (see
            :func:`datatools.core.folds_table.check_belongs`).

    Example:
        >>> report = check_folds("folds/folds.parquet", images="train/")
        >>> report.ok, len(report.leaks)
        (True, 0)
    """
    specs = _specs(group_by)
    path = Path(folds)
    table = _read_table(path)
    k = int(table["fold"].max()) + 1 if len(table) else 0
    ds = ds if ds is not None else _beside(path, k)
    if ds is not None:
        check_belongs(table, ds, path, partial=partial)
        known = {img["id"] for img in ds.images}
        table = table[table["image_id"].isin(known)]
    ids = table["image_id"].tolist()
    files = [str(f) for f in table["file_name"].tolist()]
    part = table["fold"].to_numpy(dtype=np.int64)
    u = _Universe(ids, files, part, [f"fold {f}" for f in range(k)],
                  groupings=[("group", [str(g) for g in table["group"].tolist()])])
    if images is not None:
        u.paths = _image_paths(images, files, path)
    if ds is not None:
        u.presence, u.class_names = _presence_by_id(ds, ids)
        by_id = {img["id"]: img for img in ds.images}
        sub = Dataset({**ds.coco, "images": [by_id[i] for i in ids]}, Path(images or ds.image_root), ds.source)
        u.provenance = read_provenance(sub.images, str(ds.source))
        for spec in specs:
            u.groupings.append((str(spec), image_groups(sub, [spec], provenance=False).groups))
    elif specs:
        raise InvalidDatasetError(f"{path}: --group-by needs the annotations (--ann or --data)")
    else:
        u.notes.append("provenance leakage not checked: give the annotations (--ann or --data)")
    return _audit(u, max_distance, workers, progress)


def check_train_val(
    train: Dataset,
    val: Dataset,
    *,
    images: bool = True,
    group_by: Sequence[GroupSpec | str] = (),
    max_distance: int = DEFAULT_MAX_DISTANCE,
    workers: int | None = None,
    progress: bool = False,
) -> CheckReport:
    """Audit a train / validation pair of COCO files (ids of the two files are independent).

    Provenance sources are followed from one file into the other only when the two files share no image id (both
    cut from one dataset); otherwise a note says so.

    Args:
        train: the training dataset (its ``image_root`` locates its files).
        val: the validation dataset.
        images: read the image files for exact and near-duplicate checks.
        group_by: groupings to check (e.g. ``regex:...`` for Roboflow copies, ``folder`` for patients); not
            ``duplicates``, which is the near-duplicate check.
        max_distance: largest pHash distance of near-duplicates.
        workers: processes for hashing.
        progress: show a progress bar.

    Example:
        >>> tr = Dataset.load("train/_annotations.coco.json", "train/")
        >>> va = Dataset.load("valid/_annotations.coco.json", "valid/")
        >>> [leak.line() for leak in check_train_val(tr, va).leaks][:1]
        []
    """
    specs = _specs(group_by)
    both = train.images + val.images
    part = np.array([0] * len(train.images) + [1] * len(val.images), dtype=np.int64)
    u = _Universe([i["id"] for i in both], [i["file_name"] for i in both], part, ["train", "val"],
                  same_root=Path(train.image_root).resolve() == Path(val.image_root).resolve())
    if images:
        u.paths = [train.image_path(i) for i in train.images] + [val.image_path(i) for i in val.images]
    for spec in specs:
        keys_t = image_groups(train, [spec], provenance=False).groups
        keys_v = image_groups(val, [spec], provenance=False).groups
        u.groupings.append((str(spec), keys_t + keys_v))
    u.provenance, note = _train_val_provenance(train, val)
    u.notes += [note] if note else []
    lt, lv = image_labels(train), image_labels(val)
    if lt.class_names == lv.class_names:
        u.presence = np.concatenate([lt.presence, lv.presence])
        u.class_names = lt.class_names
    else:
        names = sorted(set(lt.class_names) | set(lv.class_names))
        u.presence = np.concatenate([_by_name(lt.presence, lt.class_names, names),
                                     _by_name(lv.presence, lv.class_names, names)])
        u.class_names = tuple(names)
    return _audit(u, max_distance, workers, progress)


def _train_val_provenance(train: Dataset, val: Dataset) -> tuple[Provenance, str]:
    """Provenance over both files. Sources are image ids of the dataset an op read; they are followed into the
    other file only when the two files' ids do not overlap (one id space, e.g. both cut from one dataset)."""
    if not {i["id"] for i in train.images} & {i["id"] for i in val.images}:
        return read_provenance(train.images + val.images, f"{train.source} + {val.source}"), ""
    pt, pv = read_provenance(train.images, str(train.source)), read_provenance(val.images, str(val.source))
    n = len(train.images)
    # sources outside their own file are told apart by file, so that train's and val's id 3 are not one image
    both = Provenance(pt.ops + pv.ops, pt.parents + tuple(tuple(p + n for p in ps) for ps in pv.parents),
                      tuple(tuple(("train", s) for s in m) for m in pt.missing)
                      + tuple(tuple(("val", s) for s in m) for m in pv.missing))
    note = ""
    if pt.unresolved or pv.unresolved:
        note = (f"provenance across --train and --val not followed: their image ids overlap, so a source id "
                f"cannot name an image of the other file ({pt.unresolved + pv.unresolved} derived image(s) with "
                "sources outside their file)")
    return both, note


def _by_name(presence: npt.NDArray[np.bool_], names: Sequence[str], all_names: Sequence[str]) -> npt.NDArray[np.bool_]:
    out = np.zeros((presence.shape[0], len(all_names)), dtype=bool)
    for c, name in enumerate(names):
        out[:, all_names.index(name)] |= presence[:, c]
    return out

"""Which images belong together and must never be split across folds.

A grouping is written as a string (the ``--group-by`` value):

* ``folder``: the image's folder inside the image root (e.g. one patient's folder holding both hands);
* ``attr:NAME``: ``images[].NAME``, or ``images[].attributes.NAME``;
* ``meta:FILE:COLUMN``: a column of a CSV / parquet / Excel table with one row per image, joined on its
  ``image_id`` (or ``id``) or ``file_name`` column;
* ``regex:PATTERN``: a regular expression searched in ``file_name``; the group is the named group ``group``, else
  the first capture group, else the whole match. Roboflow names copies of one photo ``<stem>_jpg.rf.<hash>.jpg``:
  ``regex:^(.*)_(jpg|jpeg|png)\\.rf\\.`` groups them. Names that do not match are groups of their own;
* ``duplicates``: near-duplicate images (perceptual hash, flips and rotations included) are grouped together.

Several groupings combine: images that share a group under any of them end up in one group. Provenance is one
more source of links, on by default: each image ``datatools augment`` made joins the group of every image it was
made from, transitively (:mod:`datatools.folds.provenance`). Every splitter takes its groups from
:func:`image_groups`, so a derived image always lands on the side of its sources.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError, InvalidDatasetError, UnreadableFileError
from datatools.folds.phash import DEFAULT_MAX_DISTANCE, hamming_pairs, hash_files
from datatools.folds.provenance import read_provenance

__all__ = ["ROBOFLOW_REGEX", "GroupKind", "GroupSpec", "ImageGroups", "connected_components", "group_codes",
           "image_groups"]

#: The copies Roboflow exports of one source photo: ``<stem>_<ext>.rf.<hash>.<ext>``.
ROBOFLOW_REGEX = r"^(.*)_(jpg|jpeg|png|bmp|tif|tiff|webp)\.rf\.[0-9a-f]+\."
_META_KEYS = ("image_id", "id", "file_name", "filename")


class GroupKind(str, Enum):
    """Kinds of grouping (see the module docstring)."""

    FOLDER = "folder"
    ATTR = "attr"
    META = "meta"
    REGEX = "regex"
    DUPLICATES = "duplicates"


@dataclass(frozen=True)
class GroupSpec:
    """A parsed ``--group-by`` value.

    Attributes:
        kind: the kind of grouping.
        name: ``attr``: the attribute; ``meta``: the column; ``regex``: the pattern.
        file: ``meta``: the table.

    Example:
        >>> GroupSpec.parse("meta:patients.csv:patient_id")
        GroupSpec(kind=<GroupKind.META: 'meta'>, name='patient_id', file='patients.csv')
    """

    kind: GroupKind
    name: str = ""
    file: str = ""

    def __post_init__(self) -> None:
        needs_name = self.kind in (GroupKind.ATTR, GroupKind.META, GroupKind.REGEX)
        if needs_name != bool(self.name):
            raise ValueError(f"--group-by {self.kind.value}: " + ("give a name after the colon" if needs_name
                                                                   else "takes no argument"))
        if (self.kind is GroupKind.META) != bool(self.file):
            raise ValueError("--group-by meta needs a table and a column: meta:FILE:COLUMN")
        if self.kind is GroupKind.REGEX:
            try:
                re.compile(self.name)
            except re.error as exc:
                raise ValueError(f"--group-by regex: bad pattern {self.name!r} ({exc})") from None

    @classmethod
    def parse(cls, value: str | GroupSpec) -> GroupSpec:
        """Parse ``folder``, ``attr:NAME``, ``meta:FILE:COLUMN``, ``regex:PATTERN`` or ``duplicates``.

        Raises:
            ValueError: unknown kind or missing argument; the message lists the accepted forms.
        """
        if isinstance(value, GroupSpec):
            return value
        head, sep, rest = value.partition(":")
        try:
            kind = GroupKind(head.strip())
        except ValueError:
            raise ValueError(f"unknown --group-by {value!r}; use folder, attr:NAME, meta:FILE:COLUMN, regex:PATTERN "
                             "or duplicates") from None
        if kind is GroupKind.META:
            file, _, column = rest.rpartition(":")
            return cls(kind, column, file)
        return cls(kind, rest)

    def __str__(self) -> str:
        if self.kind is GroupKind.META:
            return f"meta:{self.file}:{self.name}"
        return self.kind.value + (f":{self.name}" if self.name else "")


def connected_components(n: int, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Component of each of ``n`` items linked by ``pairs``; a component is named by its smallest item.

    Example:
        >>> connected_components(4, [(0, 2), (3, 2)])
        [0, 1, 0, 0]
    """
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in pairs:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return [find(i) for i in range(n)]


def _label(img: dict[str, Any]) -> str:
    return f"image id {img.get('id')} ({img.get('file_name')})"


def _folder(ds: Dataset) -> list[str]:
    return [PurePosixPath(img["file_name"]).parent.as_posix() for img in ds.images]


def _missing(source: str, what: str, missing: list[dict[str, Any]]) -> InvalidDatasetError:
    more = f" (and {len(missing) - 1} more images)" if len(missing) > 1 else ""
    return InvalidDatasetError(f"{source}: {_label(missing[0])} has no {what}{more}")


def _attr(ds: Dataset, name: str) -> list[str]:
    keys: list[str] = []
    missing = []
    for img in ds.images:
        attrs = img.get("attributes")
        value = img.get(name, attrs.get(name) if isinstance(attrs, dict) else None)
        if value is None:
            missing.append(img)
        keys.append(str(value))
    if missing:
        raise _missing(str(ds.source), f"attribute {name!r} (images[].{name} or images[].attributes.{name})",
                       missing)
    return keys


def _read_table(path: Path) -> Any:
    import pandas as pd

    suffix = path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pd.read_parquet(path)
        if suffix in (".xlsx", ".xls"):
            return pd.read_excel(path)
        return pd.read_csv(path, sep=None, engine="python")  # sniffs , ; tab
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: meta table not found") from None
    except Exception as exc:  # pandas and its engines raise many types for unreadable tables
        raise UnreadableFileError(f"{path}: not a readable table ({exc})") from None


def _meta(ds: Dataset, file: str, column: str) -> list[str]:
    path = Path(file)
    table = _read_table(path)
    by_lower = {str(c).lower(): c for c in table.columns}
    if column not in table.columns:
        raise InvalidDatasetError(f"{path}: no column {column!r}; columns: {[str(c) for c in table.columns]}")
    key = next((by_lower[k] for k in _META_KEYS if k in by_lower), None)
    if key is None:
        raise InvalidDatasetError(f"{path}: needs a column to join on images: one of {', '.join(_META_KEYS)}")
    values: dict[str, Any] = {}
    for k, v in zip(table[key].tolist(), table[column].tolist(), strict=True):
        values.setdefault(str(k), v)
    by_id = str(key).lower() in ("image_id", "id")
    if by_id:
        names = [str(img["id"]) for img in ds.images]
    else:
        names = [img["file_name"] for img in ds.images]
        if not any(n in values for n in names):  # tables often list bare file names
            names = [PurePosixPath(n).name for n in names]
    keys, missing = [], []
    for img, name in zip(ds.images, names, strict=True):
        value = values.get(name)
        if value is None or (isinstance(value, float) and value != value):
            missing.append(img)
        keys.append(str(value))
    if missing:
        raise _missing(str(path), f"row with a {column!r} value (joined on {key!r})", missing)
    return keys


def _regex(ds: Dataset, pattern: str) -> tuple[list[str], list[str]]:
    rx = re.compile(pattern)
    keys, unmatched = [], []
    for img in ds.images:
        m = rx.search(img["file_name"])
        if m is None:
            unmatched.append(img["file_name"])
            keys.append(img["file_name"])
            continue
        if "group" in rx.groupindex and m.group("group") is not None:
            keys.append(m.group("group"))
        else:
            keys.append(next((g for g in m.groups() if g is not None), m.group(0)))
    notes = []
    if unmatched:
        notes.append(f"{len(unmatched)} file name(s) do not match --group-by regex {pattern!r} and are groups of "
                     f"their own, e.g. {unmatched[0]!r}")
    return keys, notes


def _duplicates(ds: Dataset, max_distance: int, workers: int | None, progress: bool) -> list[str]:
    hashes = hash_files([ds.image_path(img) for img in ds.images], workers=workers, progress=progress)
    pairs = [(i, j) for i, j, _ in hamming_pairs(hashes.phash, max_distance=max_distance)]
    first: dict[str, int] = {}
    for i, digest in enumerate(hashes.sha256):  # identical bytes are duplicates whatever the hash says
        j = first.setdefault(digest, i)
        if j != i:
            pairs.append((j, i))
    comp = connected_components(len(ds.images), pairs)
    return [ds.images[c]["file_name"] for c in comp]


def _components(keys: Sequence[Sequence[str]], links: Sequence[tuple[int, int]]) -> list[int]:
    """One connected-components step over every source of links: images sharing a key under any grouping, and
    the provenance ``links``."""
    pairs = list(links)
    for column in keys:
        first: dict[str, int] = {}
        for i, key in enumerate(column):
            j = first.setdefault(key, i)
            if j != i:
                pairs.append((j, i))
    return connected_components(len(keys[0]), pairs)


def _names(comp: Sequence[int], keys: Sequence[str]) -> list[str]:
    """A name per component: its images' key when they share one, else the first key and how many others."""
    names: dict[int, list[str]] = {}
    for i, c in enumerate(comp):
        if keys[i] not in names.setdefault(c, []):
            names[c].append(keys[i])
    label = {c: v[0] if len(v) == 1 else f"{v[0]}+{len(v) - 1}" for c, v in names.items()}
    return [label[c] for c in comp]


@dataclass(frozen=True)
class ImageGroups:
    """The group of every image, and what provenance changed.

    Attributes:
        groups: one group name per image (``ds.images`` order).
        notes: e.g. how many file names a regex did not match.
        groups_without_provenance: the number of groups ``group_by`` alone makes.
        joined: groups of ``group_by`` alone that provenance put together with at least one other.
        joined_into: the groups those became (``n_groups = groups_without_provenance - joined + joined_into``).
        derived: images made from others (listing ``images[].datatools.sources``).
        unresolved: derived images with a source that is not an image of the dataset.
        provenance: whether provenance links were followed.
    """

    groups: list[str]
    notes: list[str]
    groups_without_provenance: int
    joined: int = 0
    joined_into: int = 0
    derived: int = 0
    unresolved: int = 0
    provenance: bool = True

    @property
    def n_groups(self) -> int:
        """The number of groups."""
        return len(set(self.groups))

    def provenance_line(self) -> str:
        """What provenance did, in one line for people.

        Example:
            >>> image_groups(flipped_and_merged).provenance_line()
            'provenance: 45 derived images; joined 90 groups into 45 (groups: 90 -> 45)'
        """
        if not self.provenance:
            return f"provenance ignored: {self.derived} derived images (groups: {self.n_groups})"
        outside = f", {self.unresolved} with sources outside the dataset" if self.unresolved else ""
        return (f"provenance: {self.derived} derived images{outside}; joined {self.joined} groups into "
                f"{self.joined_into} (groups: {self.groups_without_provenance} -> {self.n_groups})")


def _derived(ds: Dataset) -> int:
    """Images listing sources, counted without checking the records (provenance ignored)."""
    return sum(isinstance(img.get("datatools"), dict) and img["datatools"].get("sources") is not None
               for img in ds.images)


def image_groups(
    ds: Dataset,
    group_by: Sequence[GroupSpec | str] = (),
    *,
    provenance: bool = True,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    workers: int | None = None,
    progress: bool = False,
) -> ImageGroups:
    """The group of every image (``ds.images`` order): the groupings and the provenance links combined.

    Without ``group_by`` and without derived images each image is its own group (named by its id).

    Args:
        ds: the dataset; ``duplicates`` reads its image files.
        group_by: groupings (see the module docstring); several are combined.
        provenance: join each derived image (``images[].datatools.sources``) with its sources, transitively;
            images derived from one source outside the dataset are joined with each other.
        max_distance: ``duplicates``: largest pHash Hamming distance (of 64 bits) of near-duplicates.
        workers: processes for hashing images.
        progress: show a progress bar while hashing.

    Returns:
        The groups, notes (e.g. how many file names a regex did not match) and provenance counts.

    Raises:
        InvalidDatasetError: an image lacks the attribute or meta row it is grouped by, or has malformed
            provenance (``datatools.sources`` not a list of image ids).
        UnreadableFileError: the meta table or an image (``duplicates``) cannot be read.

    Example:
        >>> grouping = image_groups(ds, ["regex:" + ROBOFLOW_REGEX])
        >>> grouping.n_groups < len(grouping.groups)
        True
    """
    specs = [GroupSpec.parse(s) for s in group_by]
    keys: list[list[str]] = []
    notes: list[str] = []
    for spec in specs:
        if spec.kind is GroupKind.FOLDER:
            keys.append(_folder(ds))
        elif spec.kind is GroupKind.ATTR:
            keys.append(_attr(ds, spec.name))
        elif spec.kind is GroupKind.META:
            keys.append(_meta(ds, spec.file, spec.name))
        elif spec.kind is GroupKind.REGEX:
            column, unmatched = _regex(ds, spec.name)
            notes += unmatched
            keys.append(column)
        elif spec.kind is GroupKind.DUPLICATES:
            keys.append(_duplicates(ds, max_distance, workers, progress))
        else:  # pragma: no cover - the Enum is exhaustive
            raise DatatoolsError(f"unknown grouping {spec}")
    if not keys:
        keys = [[str(img["id"]) for img in ds.images]]
    if not ds.images:
        return ImageGroups([], notes, 0, provenance=provenance)
    before = _components(keys, [])
    if not provenance:
        return ImageGroups(_names(before, keys[0]), notes, len(set(before)), derived=_derived(ds), provenance=False)
    links = read_provenance(ds.images, str(ds.source))
    after = _components(keys, links.links()) if links.derived else before
    parts: dict[int, set[int]] = {}
    for b, a in zip(before, after, strict=True):
        parts.setdefault(a, set()).add(b)
    joined = [len(p) for p in parts.values() if len(p) > 1]
    return ImageGroups(_names(after, keys[0]), notes, len(set(before)), sum(joined), len(joined), links.derived,
                       links.unresolved)


def group_codes(groups: Sequence[str]) -> tuple[npt.NDArray[np.int64], list[str]]:
    """``(code of each image's group 0..G-1 in order of first appearance, the G group names)``."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(g, len(index)) for g in groups), dtype=np.int64, count=len(groups))
    return codes, list(index)

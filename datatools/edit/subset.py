"""``edit subset``: the images that match every given criterion (or, with ``exclude``, all the others).

Criteria: image ids, file-name glob patterns (``fnmatch``, ``*`` crosses folders), regular expressions
(``re.search``), classes present (an image holding at least one of the classes), and a ``findings.parquet`` from
``datatools clean`` (an image flagged by a finding of the chosen kinds). Within one criterion the values are
alternatives; different criteria must all hold. Categories are kept whole; annotations go with their image.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError, InvalidDatasetError
from datatools.core.folds_table import read_table_file
from datatools.edit.refs import ClassRef, resolve

__all__ = ["Selection", "flagged_image_ids", "select_images"]


@dataclass(frozen=True)
class Selection:
    """Which images ``edit subset`` keeps.

    Attributes:
        ids: image ids.
        names: file-name glob patterns.
        regex: regular expressions searched in the file name.
        classes: classes (``NAME`` or ``id:N``); an image holding any of them matches.
        findings: a ``findings.parquet`` of this dataset; an image flagged by it matches.
        kinds: only findings of these kinds (or codes) count (default: every kind).
        exclude: keep the images that do not match.

    Example:
        >>> Selection(findings=Path("clean/findings.parquet"), kinds=("duplicate-near",), exclude=True)
    """

    ids: tuple[int, ...] = ()
    names: tuple[str, ...] = ()
    regex: tuple[str, ...] = ()
    classes: tuple[str, ...] = ()
    findings: Path | None = None
    kinds: tuple[str, ...] = ()
    exclude: bool = False

    def __post_init__(self) -> None:
        for pattern in self.regex:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{pattern!r} is not a regular expression ({exc})") from None
        for text in self.classes:
            ClassRef.parse(text)
        if self.kinds and self.findings is None:
            raise ValueError("kinds go with findings")
        if not (self.ids or self.names or self.regex or self.classes or self.findings is not None):
            raise ValueError("nothing selects images: give --ids, --name, --regex, --has-class or --findings")

    def params(self) -> dict[str, Any]:
        """The selection as given, for the summary."""
        return {"ids": list(self.ids), "names": list(self.names), "regex": list(self.regex),
                "classes": list(self.classes), "findings": None if self.findings is None else str(self.findings),
                "kinds": list(self.kinds), "exclude": self.exclude}


def flagged_image_ids(ds: Dataset, findings: str | os.PathLike[str], kinds: Sequence[str] = ()) -> set[Any]:
    """The images of ``ds`` a clean ``findings.parquet`` flags (by a finding of ``kinds``, any kind when empty).

    Raises:
        UnreadableFileError: the file is missing or not parquet.
        InvalidDatasetError: not a findings table, or made for another dataset (an image id naming another file).
    """
    path = Path(findings)
    table = read_table_file(path, "findings")
    missing = [c for c in ("kind", "code", "image_id", "file_name") if c not in table.columns]
    if missing:
        raise InvalidDatasetError(f"{path}: not a findings table of `datatools clean` (no column "
                                  f"{', '.join(missing)})")
    names = {img["id"]: str(img["file_name"]) for img in ds.images}
    rows = table[table["image_id"].notna()]
    for image_id, name in zip(rows["image_id"].astype("int64").tolist(), rows["file_name"].astype(str).tolist(),
                              strict=True):
        if names.get(image_id, name) != name or image_id not in names:
            raise InvalidDatasetError(f"{path}: the findings were made for another dataset: image id {image_id} is "
                                      f"{name!r} there but {names.get(image_id, 'absent')!r} in {ds.source}")
    if kinds:
        from datatools.clean.findings import KINDS

        unknown = [k for k in kinds if k not in KINDS and k not in set(table["code"].astype(str))]
        if unknown:
            raise InvalidDatasetError(f"{path}: --kinds: {unknown[0]!r} is neither a finding kind ({', '.join(KINDS)}) "
                                      "nor a code in the table")
        rows = rows[rows["kind"].isin(kinds) | rows["code"].isin(kinds)]
    return set(rows["image_id"].astype("int64").tolist())


def select_images(ds: Dataset, selection: Selection) -> list[Any]:
    """The ids of the images ``selection`` keeps, in file order.

    Raises:
        InvalidDatasetError: a class the dataset lacks, a findings table of another dataset, or nothing kept.

    Example:
        >>> ds = Dataset.load("examples/medical_waste/train/_annotations.coco.json", "examples/medical_waste/train")
        >>> len(select_images(ds, Selection(names=("*_jpg.rf.*",), classes=("syringe",))))
        9
    """
    tests = []
    if selection.ids:
        known = {img["id"] for img in ds.images}
        absent = [i for i in selection.ids if i not in known]
        if absent:
            raise InvalidDatasetError(f"{ds.source}: --ids: no image with id {absent[0]}"
                                      + (f" (and {len(absent) - 1} more)" if len(absent) > 1 else ""))
        wanted = set(selection.ids)
        tests.append(lambda img: img["id"] in wanted)
    if selection.names:
        tests.append(lambda img: any(fnmatch.fnmatchcase(str(img["file_name"]), p) for p in selection.names))
    if selection.regex:
        patterns = [re.compile(p) for p in selection.regex]
        tests.append(lambda img: any(p.search(str(img["file_name"])) for p in patterns))
    if selection.classes:
        cats = {i for t in selection.classes for i in resolve(ClassRef.parse(t), ds.categories, ds.source,
                                                                  "--has-class")}
        holding = {a["image_id"] for a in ds.annotations if a["category_id"] in cats}
        tests.append(lambda img: img["id"] in holding)
    if selection.findings is not None:
        flagged = flagged_image_ids(ds, selection.findings, selection.kinds)
        tests.append(lambda img: img["id"] in flagged)
    keep = [img["id"] for img in ds.images if all(t(img) for t in tests) != selection.exclude]
    if not keep:
        raise DatatoolsError(f"{ds.source}: the selection keeps no image; nothing written")
    return keep

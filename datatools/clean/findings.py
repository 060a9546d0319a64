"""The findings model of ``datatools clean``: one row per thing found, each with a kind, a severity, a score to
rank by, the image and annotation ids it concerns and a reason a person can read.

Every kind belongs to one check and acts on one level (a whole image, or the annotations it names), which is
what ``--apply`` drops or turns into ignore regions. The registry :data:`KINDS` is the one list of kinds: the
CLI's ``--drop`` choices and the report's sections come from it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from datatools.core.issues import Severity

__all__ = ["CHECKS", "DEFAULT_DROP", "KINDS", "Check", "Finding", "KindInfo", "Level", "findings_columns",
           "sort_findings", "write_findings"]


class Check(str, Enum):
    """The checks ``clean`` runs (``--checks``)."""

    DUPLICATES = "duplicates"
    OUTLIERS = "outliers"
    ANNOTATIONS = "annotations"
    LABELS = "labels"


#: Every check, in report order.
CHECKS = tuple(Check)


class Level(str, Enum):
    """What a finding acts on under ``--apply``: the image, its annotations, or nothing (dataset-wide)."""

    IMAGE = "image"
    ANNOTATION = "annotation"
    NONE = "none"


@dataclass(frozen=True)
class KindInfo:
    """A kind of finding: its check, what it acts on, and one line saying what it means."""

    check: Check
    level: Level
    meaning: str


#: kind -> what it is. The order is the report's order within a check.
KINDS: dict[str, KindInfo] = {
    "duplicate-exact": KindInfo(Check.DUPLICATES, Level.IMAGE, "same pixels as the cluster's keeper"),
    "duplicate-near": KindInfo(Check.DUPLICATES, Level.IMAGE, "perceptual-hash copy of the keeper (flips, "
                               "rotations, re-encodes)"),
    "leak-exact": KindInfo(Check.DUPLICATES, Level.IMAGE, "same pixels as an image of an --against dataset"),
    "leak-near": KindInfo(Check.DUPLICATES, Level.IMAGE, "perceptual-hash copy of an image of an --against dataset"),
    "near-constant-image": KindInfo(Check.OUTLIERS, Level.IMAGE, "almost no contrast: a blank, black or white frame"),
    "outlier-image": KindInfo(Check.OUTLIERS, Level.IMAGE, "image statistics far from the rest (median / MAD)"),
    "outlier-feature": KindInfo(Check.OUTLIERS, Level.IMAGE, "far from the other images in the model's encoder "
                                "features (--ckpt; k-nearest-neighbour distance)"),
    "invalid-image": KindInfo(Check.ANNOTATIONS, Level.IMAGE, "image record or file that cannot be used"),
    "invalid-annotation": KindInfo(Check.ANNOTATIONS, Level.ANNOTATION, "annotation that cannot be rasterised"),
    "invalid-category": KindInfo(Check.ANNOTATIONS, Level.NONE, "broken category record"),
    "validate-warning": KindInfo(Check.ANNOTATIONS, Level.NONE, "a warning of datatools validate"),
    "validate-info": KindInfo(Check.ANNOTATIONS, Level.NONE, "a note of datatools validate"),
    "degenerate": KindInfo(Check.ANNOTATIONS, Level.ANNOTATION, "tiny object, sliver, or polygon far from filling "
                           "its box"),
    "double-annotation": KindInfo(Check.ANNOTATIONS, Level.ANNOTATION, "the same object annotated twice (same "
                                  "class, mask IoU above the threshold)"),
    "conflicting-label": KindInfo(Check.ANNOTATIONS, Level.ANNOTATION, "one object annotated with two classes "
                                  "(mask IoU above the threshold)"),
    "size-outlier": KindInfo(Check.ANNOTATIONS, Level.ANNOTATION, "object area far from the rest of its class"),
    "label-issue": KindInfo(Check.LABELS, Level.ANNOTATION, "the model's out-of-fold probabilities disagree with "
                            "the annotation's class"),
    "label-missing": KindInfo(Check.LABELS, Level.NONE, "a region the model sees as an object, labelled background"),
}

#: What ``--apply`` drops when ``--drop`` is not given.
DEFAULT_DROP = ("duplicate-exact", "invalid-image", "invalid-annotation")


@dataclass(frozen=True)
class Finding:
    """One thing ``clean`` found.

    Attributes:
        kind: a key of :data:`KINDS`.
        code: the finer reason within the kind (a validate code, ``tiny``, ``brightness`` ...).
        severity: error, warning or info.
        score: higher is worse; ranks findings within a kind.
        image_id: the image's id, or ``None`` for dataset-wide findings.
        file_name: the image's file name ('' when none).
        annotation_ids: the annotations the finding acts on (empty for image-level kinds).
        related: what it was compared with, for people (``image 12``, ``annotation 40``).
        cluster: duplicate cluster number (-1 when not a duplicate).
        reason: one line for a person.
        image_index: position of the image in the dataset (-1 when none), for ordering and galleries.
    """

    kind: str
    code: str
    severity: Severity
    score: float
    image_id: Any
    file_name: str
    reason: str
    annotation_ids: tuple[Any, ...] = ()
    related: str = ""
    cluster: int = -1
    image_index: int = -1
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown finding kind {self.kind!r}; known: {', '.join(KINDS)}")

    @property
    def check(self) -> Check:
        return KINDS[self.kind].check

    @property
    def level(self) -> Level:
        return KINDS[self.kind].level


_KIND_ORDER = {kind: i for i, kind in enumerate(KINDS)}


def sort_findings(findings: Sequence[Finding]) -> list[Finding]:
    """Report order: by check, kind, worst score first, then image position and annotation ids."""
    return sorted(findings, key=lambda f: (CHECKS.index(f.check), _KIND_ORDER[f.kind], -f.score, f.image_index,
                                           [str(a) for a in f.annotation_ids], f.code))


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def findings_columns(findings: Sequence[Finding]) -> dict[str, Any]:
    """The findings as parquet columns (one row per finding, in the given order)."""
    return {
        "check": [f.check.value for f in findings],
        "kind": [f.kind for f in findings],
        "code": [f.code for f in findings],
        "severity": [f.severity.value for f in findings],
        "score": [round(float(f.score), 6) for f in findings],
        "image_id": [f.image_id if _is_int(f.image_id) else None for f in findings],
        "file_name": [f.file_name for f in findings],
        "annotation_ids": [[a for a in f.annotation_ids if _is_int(a)] for f in findings],
        "related": [f.related for f in findings],
        "cluster": [int(f.cluster) for f in findings],
        "reason": [f.reason for f in findings],
    }


def write_findings(path: str | os.PathLike[str], findings: Sequence[Finding]) -> None:
    """Write ``findings.parquet`` (deterministic bytes for the same findings).

    Example:
        >>> write_findings("out/findings.parquet", sort_findings(found))
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    cols = findings_columns(findings)
    arrays = {name: pa.array(values, type=pa.list_(pa.int64())) if name == "annotation_ids" else pa.array(values)
              for name, values in cols.items()}
    arrays["image_id"] = pa.array(cols["image_id"], type=pa.int64())
    arrays["score"] = pa.array(cols["score"], type=pa.float64())
    for name in ("check", "kind", "code", "severity", "file_name", "related", "reason"):
        arrays[name] = pa.array(cols[name], type=pa.string())
    arrays["cluster"] = pa.array(cols["cluster"], type=pa.int64())
    pq.write_table(pa.table(arrays), str(path), compression="zstd")

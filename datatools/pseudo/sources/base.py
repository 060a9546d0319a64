"""What every source of predictions shares: the images to label, the decision context, file digests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from datatools.core.errors import InvalidDatasetError, UnreadableFileError

from ..rule import RuleConfig, decide_multiclass, decide_multilabel
from ..writer import ImageLabels, labels_from_multiclass, labels_from_multilabel

__all__ = ["Decision", "Source", "Target", "check_categories", "decide", "sha256_of"]

MULTICLASS = "multiclass"
MULTILABEL = "multilabel"


@dataclass(frozen=True)
class Target:
    """One image to pseudo-label.

    Attributes:
        record: its COCO image record (``file_name``, ``height``, ``width``; ``id`` is None for a bare folder).
        path: the image file.
    """

    record: dict[str, Any]
    path: Path

    @property
    def file_name(self) -> str:
        return str(self.record["file_name"])

    @property
    def size_hw(self) -> tuple[int, int]:
        return int(self.record["height"]), int(self.record["width"])


@dataclass(frozen=True)
class Decision:
    """How probabilities become labels for one run: the mode, the channel thresholds, the categories.

    Attributes:
        mode: ``multiclass`` (channels: background, then the classes) or ``multilabel`` (one per class).
        names: the channel names.
        thresholds: (C,) threshold per channel.
        category_ids: the category id of each class (values 1..K, or planes 0..K-1).
        min_area: components under this many pixels become ignore.
    """

    mode: str
    names: tuple[str, ...]
    thresholds: npt.NDArray[np.float32]
    category_ids: tuple[int, ...]
    min_area: int


def decide(probs: npt.NDArray[np.floating], d: Decision) -> ImageLabels:
    """The rule on one image's (C, H, W) probabilities, as records.

    Raises:
        InvalidDatasetError: the channel count differs from the decision's.
    """
    if probs.shape[0] != len(d.names):
        raise InvalidDatasetError(f"predictions have {probs.shape[0]} channels, expected {len(d.names)} "
                                  f"({', '.join(d.names)})")
    if d.mode == MULTILABEL:
        positive, ignore = decide_multilabel(probs, d.thresholds, d.min_area)
        return labels_from_multilabel(positive, ignore, probs >= 0.5, d.category_ids, d.names)
    labels = decide_multiclass(probs, d.thresholds, d.min_area)
    return labels_from_multiclass(labels, probs.argmax(axis=0), d.category_ids, d.names)


def check_categories(what: str, got: Sequence[tuple[int, str]], categories: Sequence[dict[str, Any]],
                     source: Any) -> None:
    """Refuse predictions whose classes (category ids and names, in order) differ from the dataset's.

    Raises:
        InvalidDatasetError: names the prediction file and the dataset.
    """
    want = [(int(c["id"]), str(c["name"])) for c in categories]
    if list(got) != want:
        raise InvalidDatasetError(f"{what}: classes {list(got)} differ from the dataset's categories {want} "
                                  f"({source}); predict with a model of these classes")


def sha256_of(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes.

    Raises:
        UnreadableFileError: the file cannot be read.
    """
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror})") from None


class Source(Protocol):
    """A source of predictions: checked against the images first, then streamed image by image, in order."""

    kind: str
    mode: str  #: multiclass, multilabel or instances (results files)

    @property
    def names(self) -> tuple[str, ...]:
        """The channel names (multiclass: background first) or class names (instances)."""
        ...

    def classes(self) -> list[tuple[int, str]]:
        """``(category id, name)`` of the classes it predicts, in order."""
        ...

    def check(self, targets: Sequence[Target], categories: Sequence[dict[str, Any]] | None, source: Any) -> None:
        """Refuse predictions that do not belong to these images or categories (before any work starts)."""
        ...

    def provenance(self) -> dict[str, Any]:
        """What produced the predictions (files with their sha256, TTA views), for every written image."""
        ...

    def labels(self, targets: Sequence[Target], decision: Decision, rule: RuleConfig, *, workers: int | None,
               progress: bool) -> Iterator[ImageLabels]:
        """Each target's pseudo labels, in order."""
        ...

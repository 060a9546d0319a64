"""Per-fold class balance for ``datatools eda --folds``: each fold's class shares against the whole."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from datatools.core.folds_table import read_folds_for

if TYPE_CHECKING:
    from datatools.core.dataset import Dataset

__all__ = ["SHARE_KINDS", "FoldBalance", "fold_balance", "folds_of_images"]

#: The class shares compared: of the fold's pixels (background included), of its labelled pixels (the base
#: ``datatools folds`` balances and reports), of its images (containing the class), of its instances.
SHARE_KINDS = ("pixel_share", "labelled_share", "image_share", "instance_share")


@dataclass(frozen=True)
class FoldBalance:
    """Class shares per fold and overall.

    Attributes:
        folds: fold numbers, ascending.
        labels: class names (values 1..K).
        images: (F,) images per fold.
        shares: kind -> (F, K) share of each class in each fold.
        overall: kind -> (K,) share over every image that has a fold.
        unassigned: dataset images the folds table does not list.
        unknown: folds-table rows whose image id is not in the dataset.
    """

    folds: list[int]
    labels: list[str]
    images: npt.NDArray[np.int64]
    shares: dict[str, npt.NDArray[np.float64]]
    overall: dict[str, npt.NDArray[np.float64]]
    unassigned: int
    unknown: int

    def deviation(self, kind: str) -> npt.NDArray[np.float64]:
        """(F, K) fold share minus overall share."""
        return self.shares[kind] - self.overall[kind][None, :]

    def max_deviation(self, kind: str) -> npt.NDArray[np.float64]:
        """(K,) largest absolute deviation of each class over the folds."""
        dev = np.abs(self.deviation(kind))
        return dev.max(axis=0) if len(dev) else np.zeros(len(self.labels))

    def columns(self) -> dict[str, Any]:
        """One row per (fold, class): counts, shares and deviations (the ``fold_balance.parquet`` table)."""
        f, k = len(self.folds), len(self.labels)
        cols: dict[str, Any] = {
            "fold": np.repeat(np.array(self.folds, dtype=np.int64), k),
            "class": [label for _ in range(f) for label in self.labels],
            "fold_images": np.repeat(self.images, k),
        }
        for kind in SHARE_KINDS:
            cols[kind] = self.shares[kind].reshape(-1)
            cols[f"overall_{kind}"] = np.tile(self.overall[kind], f)
            cols[f"{kind}_deviation"] = self.deviation(kind).reshape(-1)
        return cols

    def summary(self) -> dict[str, Any]:
        """What summary.json says about the folds: sizes, and each class's largest deviation per share kind."""
        out: dict[str, Any] = {"folds": self.folds, "images_per_fold": self.images.tolist(),
                               "unassigned_images": self.unassigned, "unknown_image_ids": self.unknown}
        for kind in SHARE_KINDS:
            dev = self.deviation(kind)
            per_class = self.max_deviation(kind)
            entry: dict[str, Any] = {"max_abs_deviation": {lab: round(float(v), 6)
                                                           for lab, v in zip(self.labels, per_class, strict=True)}}
            if dev.size:
                fi, ki = np.unravel_index(int(np.argmax(np.abs(dev))), dev.shape)
                entry["largest"] = {"fold": self.folds[fi], "class": self.labels[ki],
                                    "deviation": round(float(dev[fi, ki]), 6)}
            out[kind] = entry
        return out


def folds_of_images(path: str | os.PathLike[str], ds: Dataset, *, partial: bool = False
                    ) -> tuple[list[int | None], int]:
    """Each image's fold from a folds table (``None`` when it is not listed) and how many listed ids are unknown.

    Raises:
        UnreadableFileError, InvalidDatasetError: as :func:`datatools.core.folds_table.read_folds_for` (the table
            must belong to ``ds``; ``partial`` allows it to cover part of it).

    Example:
        >>> folds, unknown = folds_of_images("folds.parquet", ds)
    """
    table = read_folds_for(path, ds, partial=partial)
    fold_of = {int(i): int(f) for i, f in zip(table["image_id"].tolist(), table["fold"].tolist(), strict=True)}
    known = {int(img["id"]) for img in ds.images}
    unknown = sum(1 for i in fold_of if i not in known)
    return [fold_of.get(int(img["id"])) for img in ds.images], unknown


def fold_balance(
    image_fold: Sequence[int | None],
    class_px: npt.NDArray[np.int64],
    ann_value: npt.NDArray[np.int64],
    ann_image: npt.NDArray[np.int64],
    labels: Sequence[str],
    unknown: int = 0,
) -> FoldBalance:
    """Class shares of every fold (its validation images) and of all images with a fold.

    Args:
        image_fold: fold of each image (``None``: not in the folds table).
        class_px: (N, K + 2) per-image pixel counts (background, classes, ignore).
        ann_value: class value of every annotation.
        ann_image: image position of every annotation.
        labels: class names.
        unknown: folds-table rows not in the dataset (reported only).

    Returns:
        The shares; deviations are read from it.

    Example:
        >>> fb = fold_balance([0, 1], np.array([[5, 3, 0], [6, 2, 0]]), np.array([1, 1]), np.array([0, 1]), ["a"])
        >>> fb.shares["pixel_share"].round(3).tolist()
        [[0.375], [0.25]]
    """
    k = len(labels)
    fold_arr = np.array([-1 if f is None else f for f in image_fold], dtype=np.int64)
    folds = sorted({int(f) for f in fold_arr if f >= 0})
    shares = {kind: np.zeros((len(folds), k)) for kind in SHARE_KINDS}
    images = np.zeros(len(folds), dtype=np.int64)
    present = np.zeros((len(fold_arr), k), dtype=bool)
    if len(ann_value):
        present[ann_image, ann_value - 1] = True
    inst = np.zeros((len(fold_arr), k), dtype=np.int64)
    if len(ann_value):
        np.add.at(inst, (ann_image, ann_value - 1), 1)

    def share(sel: npt.NDArray[np.bool_]) -> dict[str, npt.NDArray[np.float64]]:
        px = class_px[sel]
        n_inst = inst[sel].sum(axis=0)
        labelled = px[:, 1: k + 1].sum(axis=0)
        return {
            "pixel_share": labelled / max(int(px.sum()), 1),
            "labelled_share": labelled / max(int(labelled.sum()), 1),
            "image_share": present[sel].sum(axis=0) / max(int(sel.sum()), 1),
            "instance_share": n_inst / max(int(n_inst.sum()), 1),
        }

    for i, fold in enumerate(folds):
        sel = fold_arr == fold
        images[i] = int(sel.sum())
        for kind, value in share(sel).items():
            shares[kind][i] = value
    overall = share(fold_arr >= 0)
    return FoldBalance(folds, list(labels), images, shares, overall, int((fold_arr < 0).sum()), unknown)

"""Out-of-fold probabilities from one checkpoint per fold (``clean --ckpt ... --folds``).

Checkpoint ``i`` predicts the images of validation fold ``i`` of the folds table, so no image is scored by a
model that trained on it. Prediction goes through the trainer's one inference loop (``datatools_train.predict``
with ``save_probs``), imported only here and only when asked for: ``datatools`` does not import torch otherwise.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datatools.core.errors import DatatoolsError, InvalidDatasetError
from datatools.core.folds_table import read_folds
from datatools.core.paths import resolve_under

__all__ = ["check_ckpt_folds", "out_of_fold_probs"]


def check_ckpt_folds(ckpts: Sequence[str | os.PathLike[str]], folds: str | os.PathLike[str] | None,
                     images: Sequence[dict[str, Any]]) -> dict[Any, int]:
    """Check the checkpoints and the folds table go together and cover the dataset; image id -> fold.

    Raises:
        DatatoolsError: ``--ckpt`` without ``--folds``, a checkpoint missing, or not one checkpoint per fold.
        InvalidDatasetError: an image of the dataset is not in the folds table, or under another file name.
    """
    if folds is None:
        raise DatatoolsError("--ckpt needs --folds folds.parquet (checkpoint i predicts validation fold i)")
    for ckpt in ckpts:
        if not Path(ckpt).is_file():
            raise DatatoolsError(f"{ckpt}: checkpoint not found")
    table = read_folds(folds)
    fold_of = dict(zip(table["image_id"].tolist(), (int(f) for f in table["fold"].tolist()), strict=True))
    name_of = dict(zip(table["image_id"].tolist(), table["file_name"].tolist(), strict=True))
    k = len(set(fold_of.values()))
    if len(ckpts) != k or sorted(set(fold_of.values())) != list(range(k)):
        raise DatatoolsError(f"{folds}: {k} folds but {len(ckpts)} --ckpt given; give one checkpoint per fold, in "
                             "fold order (checkpoint i trained without fold i)")
    for img in images:
        if img["id"] not in fold_of or name_of[img["id"]] != img["file_name"]:
            raise InvalidDatasetError(f"{folds}: image id {img['id']} ({img['file_name']!r}) is not in the folds "
                                      "table; it was made for another dataset")
    return fold_of


def out_of_fold_probs(
    ckpts: Sequence[str | os.PathLike[str]],
    fold_of: dict[Any, int],
    images: Sequence[dict[str, Any]],
    root: str | os.PathLike[str],
    work: str | os.PathLike[str],
    *,
    device: str = "auto",
    progress: bool = False,
) -> Path:
    """Predict every image with the checkpoint of its fold and gather the probability files into one folder.

    Args:
        ckpts: one checkpoint per fold, in fold order.
        fold_of: image id -> fold (from :func:`check_ckpt_folds`).
        images: the image records to score.
        root: image root.
        work: a scratch folder (the caller removes it).
        device: torch device (auto, cpu, cuda).
        progress: show progress bars.

    Returns:
        The folder of ``<file_name stem>.npz`` files, the layout ``--probs`` reads.

    Example:
        >>> probs = out_of_fold_probs(["f0.pt", "f1.pt"], fold_of, ds.images, "images/", "tmp/")
    """
    from datatools_train.ensemble import Item
    from datatools_train.predict import predict

    work = Path(work)
    gathered = work / "probs"
    for fold, ckpt in enumerate(ckpts):
        items = [Item(str(img["file_name"]), resolve_under(root, str(img["file_name"])), int(img["height"]),
                      int(img["width"]), img["id"]) for img in images if fold_of[img["id"]] == fold]
        if not items:
            continue
        out = work / f"fold{fold}"
        predict([ckpt], items, out, save_probs=True, probs_dtype="float16", device=device, progress=progress)
        for path in sorted((out / "probs").rglob("*.npz")):
            dst = gathered / path.relative_to(out / "probs")
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(path), dst)
        shutil.rmtree(out, ignore_errors=True)
    if not gathered.is_dir():
        raise InvalidDatasetError("no image to score: the folds table assigns none of the images to a fold")
    return gathered

"""``datatools train evaluate``: score checkpoints at each image's own resolution.

Output folder (written atomically)::

    out/
      metrics.json        overall and per-class IoU/Dice, the all-background baseline, what was run
      per_class.csv       class, iou, dice, absent (a class the truth lacks: left out of the means)
      confusion.csv/.png  multiclass: rows = truth, columns = prediction (pixels, ignore left out);
                          multilabel: tp, fp, fn, tn per class
      per_image.parquet   image_id, file_name, score, pixel accuracy, one IoU (or Dice) column per class
      gallery/            the worst images: image | truth | prediction
      thresholds.json     multilabel: the per-class thresholds that maximise Dice (for predict --thresholds)
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.atomic import atomic_write_json, output_dir
from datatools.core.classes import IGNORE_INDEX, plot_label
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.imageio import encode_image, read_image

from .ensemble import Ensemble, items_from_dataset
from .metrics import MetricAccumulator, Scores, scores_from_counts
from .report import format_table, write_per_class
from .thresholds import ThresholdSearch
from .tta import TTA

__all__ = ["EvalResult", "evaluate", "search_thresholds"]


@dataclass(frozen=True)
class EvalResult:
    out: Path
    scores: Scores
    baseline: Scores
    thresholds: tuple[float, ...] | None

    def table(self) -> str:
        """Per-class table with the all-background (or all-empty) baseline."""
        return format_table(self.scores, self.baseline)


def _target(ens: Ensemble, dataset: Dataset, image: dict[str, Any], overlap: str) -> Any:
    import torch

    from .data import MaskSource, load_mask

    mask = load_mask(MaskSource(dataset), image, ens.mode, overlap, dataset.class_map())
    t = torch.from_numpy(np.ascontiguousarray(mask.transpose(2, 0, 1) if mask.ndim == 3 else mask))
    return t.long()


def _overlap(ens: Ensemble) -> str:
    from .checkpoint import load_checkpoint

    return str(load_checkpoint(ens.paths[0]).get("config", {}).get("overlap", "smaller-on-top"))


def _check_classes(ens: Ensemble, dataset: Dataset) -> None:
    expected = [(c["category_id"], c["name"]) for c in ens.spec.classes[1:]]
    got = [(c["id"], c["name"]) for c in dataset.categories]
    if expected != got:
        raise InvalidDatasetError(f"{dataset.source}: categories {got} differ from the model's {expected}")


def search_thresholds(ens: Ensemble, dataset: Dataset, *, tta: TTA | None = None, batch: int = 8,
                      workers: int | None = None, progress: bool = False) -> tuple[float, ...]:
    """Per-class thresholds of a multilabel ensemble that maximise Dice on ``dataset``.

    Example:
        >>> search_thresholds(Ensemble(["runs/bones/best.pt"]), Dataset.load("val.json", "images/"))
        (0.45, 0.5, ...)
    """
    _check_classes(ens, dataset)
    search = ThresholdSearch(ens.names)
    overlap = _overlap(ens)
    images = {img["id"]: img for img in dataset.images}
    for pred in ens.predictions(items_from_dataset(dataset), tta=tta, batch=batch, workers=workers,
                                progress=progress):
        search.update(pred.full, _target(ens, dataset, images[pred.item.image_id], overlap).to(pred.full.device))
    return search.best()[0]


def _overlay(image: npt.NDArray[np.uint8], mask: npt.NDArray[Any], palette: npt.NDArray[np.uint8],
             multilabel: bool) -> npt.NDArray[np.uint8]:
    if multilabel:
        colour = np.zeros_like(image)
        for k in range(mask.shape[0]):
            colour[mask[k] == 1] = palette[k + 1]
        painted = mask.max(axis=0) == 1
    else:
        colour = palette[mask]
        painted = (mask != 0) & (mask != IGNORE_INDEX)
    out = image.copy()
    out[painted] = (0.45 * image[painted] + 0.55 * colour[painted]).astype(np.uint8)
    return out


def _gallery_tile(image: npt.NDArray[np.uint8], truth: npt.NDArray[Any], pred: npt.NDArray[Any],
                  palette: npt.NDArray[np.uint8], multilabel: bool, side: int = 320) -> npt.NDArray[np.uint8]:
    import cv2

    scale = side / max(image.shape[:2])
    size = (max(1, round(image.shape[1] * scale)), max(1, round(image.shape[0] * scale)))

    def small(a: npt.NDArray[Any]) -> Any:
        if multilabel:  # (K, H, W) planes
            return np.stack([cv2.resize(p.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST) for p in a])
        return cv2.resize(a.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)

    img: Any = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    gap = np.full((size[1], 4, 3), 255, np.uint8)
    return np.hstack([img, gap, _overlay(img, small(truth), palette, multilabel), gap,
                      _overlay(img, small(pred), palette, multilabel)])


def _confusion_png(path: Path, matrix: npt.NDArray[np.int64], names: Sequence[str]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros(matrix.shape, float), where=rows > 0)
    side = max(4.0, 1.5 + 0.6 * len(names))
    fig, ax = plt.subplots(figsize=(side, side))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    ax.set(xticks=range(len(names)), yticks=range(len(names)), xlabel="prediction", ylabel="truth",
           title="confusion (row-normalised)")
    labels = [plot_label(n) for n in names]
    ax.set_xticklabels(labels, rotation=45, ha="right")
    ax.set_yticklabels(labels)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=7,
                    color="white" if norm[i, j] > 0.5 else "black")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def evaluate(ckpts: Sequence[str | os.PathLike[str]], dataset: Dataset, out: str | os.PathLike[str], *,
             tta: TTA | str | None = None, vote: bool = False, thresholds: Sequence[float] | None = None,
             worst: int = 8, batch: int = 8, workers: int | None = None, device: str = "auto",
             overwrite: bool = False, progress: bool = True) -> EvalResult:
    """Score checkpoints on a dataset at each image's own resolution, with the all-background baseline.

    Args:
        ckpts: one checkpoint, or several to score their ensemble.
        dataset: images with annotations (e.g. the validation fold).
        out: output folder (see the module docstring).
        tta: test-time views, e.g. ``"hflip,vflip"``.
        vote: pixel vote instead of mean probabilities for several checkpoints.
        thresholds: multilabel decision thresholds (default 0.5); the best ones are searched and saved anyway.
        worst: how many of the lowest-scoring images go to the gallery.
        batch: images per batch.
        workers: DataLoader workers.
        device: ``auto``, ``cpu``, ``cuda``.
        overwrite: replace a non-empty ``out``.
        progress: progress bar on a terminal.

    Example:
        >>> res = evaluate(["runs/a/best.pt"], Dataset.load("val.json", "images/"), "eval/")
        >>> print(res.table())
    """
    import pandas as pd
    import torch

    ens = Ensemble(ckpts, device)
    _check_classes(ens, dataset)
    tta = tta if isinstance(tta, TTA) else TTA.parse(tta)
    multilabel = ens.mode.value == "multilabel"
    names = ens.names
    k = len(names)
    acc, base = MetricAccumulator(ens.mode, names), MetricAccumulator(ens.mode, names)
    search = ThresholdSearch(names) if multilabel else None
    confusion = torch.zeros(k, k, dtype=torch.int64)
    overlap = _overlap(ens)
    images = {img["id"]: img for img in dataset.images}
    rows: list[dict[str, Any]] = []
    items = items_from_dataset(dataset)
    for pred in ens.predictions(items, tta=tta, vote=vote, thresholds=thresholds, batch=batch, workers=workers,
                                progress=progress):
        target = _target(ens, dataset, images[pred.item.image_id], overlap)
        mask = torch.from_numpy(pred.mask).long()
        counts = acc.update(mask.unsqueeze(0), target.unsqueeze(0))[:, 0]
        base.update(torch.zeros_like(target).unsqueeze(0), target.unsqueeze(0))
        if search is not None:
            search.update(pred.full, target.to(pred.full.device))
            keep = target != IGNORE_INDEX
            correct = float(((mask == target) & keep).sum()) / max(1, int(keep.sum()))
        else:
            keep = target != IGNORE_INDEX
            confusion += torch.bincount(target[keep] * k + mask[keep], minlength=k * k).view(k, k)
            correct = float((mask[keep] == target[keep]).float().mean()) if bool(keep.any()) else math.nan
        image_scores = scores_from_counts(counts, ens.mode, names)
        rows.append({"image_id": pred.item.image_id, "file_name": pred.item.file_name, "score": image_scores.score,
                     "pixel_accuracy": correct,
                     **{f"{image_scores.metric}/{n}": v for n, v in zip(names, image_scores.per_class, strict=True)}})
    scores, baseline = acc.compute(), base.compute()
    table = pd.DataFrame(rows)
    with output_dir(out, overwrite) as tmp:
        table.to_parquet(tmp / "per_image.parquet", index=False)
        write_per_class(tmp / "per_class.csv", scores)
        found = None
        if search is not None:
            found = search.save(tmp / "thresholds.json")
            stats = acc.counts.numpy()
            pd.DataFrame({"class": names, "tp": stats[0], "fp": stats[1], "fn": stats[2], "tn": stats[3]}).to_csv(
                tmp / "confusion.csv", index=False)
        else:
            matrix = confusion.numpy()
            pd.DataFrame(matrix, index=pd.Index(names, name="truth"), columns=list(names)).to_csv(
                tmp / "confusion.csv")
            _confusion_png(tmp / "confusion.png", matrix, names)
        _write_gallery(tmp / "gallery", ens, dataset, table, worst, tta, vote, thresholds, overlap)
        atomic_write_json(tmp / "metrics.json", {
            "metric": scores.metric, "score": _num(scores.score), "foreground": _num(scores.foreground),
            "per_class": {n: {"iou": _num(i), "dice": _num(d), "absent": a} for n, i, d, a in
                          zip(names, scores.iou, scores.dice, scores.absent, strict=True)},
            "absent_from_truth": [n for n, a in zip(names, scores.absent, strict=True) if a],
            "baseline": {"what": "all-empty" if multilabel else "all-background", "score": _num(baseline.score),
                         "foreground": _num(baseline.foreground)},
            "images": len(items), "ckpts": [str(p) for p in ens.paths],
            "tta": {"views": list(tta.views), "scales": list(tta.scales)}, "vote": vote,
        }, indent=2)
    return EvalResult(Path(out), scores, baseline, found)


def _write_gallery(folder: Path, ens: Ensemble, dataset: Dataset, table: Any, worst: int, tta: TTA, vote: bool,
                   thresholds: Sequence[float] | None, overlap: str) -> None:
    if worst <= 0 or table.empty:
        return
    folder.mkdir()
    chosen = table.sort_values("score", na_position="first").head(worst)
    order = {image_id: rank for rank, image_id in enumerate(chosen["image_id"].tolist())}
    subset = [it for it in items_from_dataset(dataset) if it.image_id in order]
    palette = ens.spec.class_map().palette()
    images = {img["id"]: img for img in dataset.images}
    multilabel = ens.mode.value == "multilabel"
    for pred in ens.predictions(subset, tta=tta, vote=vote, thresholds=thresholds, workers=0):
        truth = _target(ens, dataset, images[pred.item.image_id], overlap).numpy()
        tile = _gallery_tile(read_image(pred.item.path), truth, pred.mask, palette, multilabel)
        stem = PurePosixPath(pred.item.file_name).stem
        (folder / f"{order[pred.item.image_id]:02d}_{stem}.jpg").write_bytes(encode_image(tile, ".jpg", 90))


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)

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
      errors.parquet      the error breakdown per image and class (datatools_train.error_tables), unless --no-errors
      objects.parquet     one row per ground-truth object: size, share predicted as its class, recalled
      error_breakdown.csv per class: under / over / confusion pixels and shares, boundary share, Boundary IoU,
                          object recall by size
      report.html         the breakdown, object recall, per-fold scores, galleries of the worst images per class
      folds.csv           --oof: each fold's scores and the pooled ones
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
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
from .error_tables import ErrorAccumulator
from .metrics import MetricAccumulator, Scores, scores_from_counts
from .report import format_table, write_per_class
from .sliding import SlidingWindow
from .thresholds import ThresholdSearch
from .tta import TTA

__all__ = ["EvalResult", "evaluate", "out_of_fold", "search_thresholds"]


@dataclass(frozen=True)
class EvalResult:
    out: Path
    scores: Scores
    baseline: Scores
    thresholds: tuple[float, ...] | None
    errors: Any = None  #: the per-class error breakdown (a DataFrame), when it was asked for

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
                      workers: int | None = None, progress: bool = False,
                      sliding: SlidingWindow | None = None) -> tuple[float, ...]:
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
                                progress=progress, sliding=sliding):
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


def out_of_fold(folds: str | os.PathLike[str], dataset: Dataset, partial: bool = False
                ) -> tuple[Dataset, dict[Any, int]]:
    """The images of ``dataset`` a folds table lists (checked with the one folds contract) and their folds.

    Example:
        >>> ds, fold_of = out_of_fold("folds/folds.parquet", Dataset.from_dir("ds/"))
    """
    from datatools.core.folds_table import read_folds_for

    table = read_folds_for(folds, dataset, partial=partial)
    ids = {img["id"] for img in dataset.images}
    fold_of = {i: int(f) for i, f in zip(table["image_id"].tolist(), table["fold"].tolist(), strict=True) if i in ids}
    return dataset.subset(set(fold_of)), fold_of


def _fold_groups(ckpts: Sequence[str | os.PathLike[str]], dataset: Dataset, device: str,
                 fold_of: Mapping[Any, int] | None) -> list[tuple[int | None, Ensemble, list[Any]]]:
    """``(fold, ensemble, items)``: every checkpoint on every image, or checkpoint ``i`` on the images of fold
    ``i`` (out of fold)."""
    items = items_from_dataset(dataset)
    if fold_of is None:
        return [(None, Ensemble(ckpts, device), items)]
    folds = sorted(set(fold_of.values()))
    if len(ckpts) != len(folds):
        raise InvalidDatasetError(f"out-of-fold evaluation needs one checkpoint per fold: {len(folds)} folds "
                                  f"({folds}), {len(ckpts)} checkpoints given")
    return [(f, Ensemble([ckpt], device), [it for it in items if fold_of.get(it.image_id) == f])
            for f, ckpt in zip(folds, ckpts, strict=True)]


def evaluate(ckpts: Sequence[str | os.PathLike[str]], dataset: Dataset, out: str | os.PathLike[str], *,
             tta: TTA | str | None = None, vote: bool = False, thresholds: Sequence[float] | None = None,
             worst: int = 8, batch: int = 8, workers: int | None = None, device: str = "auto",
             errors: bool = True, boundary_px: int = 3, fold_of: Mapping[Any, int] | None = None,
             sliding: SlidingWindow | None = None, overwrite: bool = False, progress: bool = True) -> EvalResult:
    """Score checkpoints on a dataset at each image's own resolution, with the all-background baseline.

    Args:
        ckpts: one checkpoint, or several to score their ensemble (or, with ``fold_of``, one per fold).
        dataset: images with annotations (e.g. the validation fold).
        out: output folder (see the module docstring).
        tta: test-time views, e.g. ``"hflip,vflip"``.
        vote: pixel vote instead of mean probabilities for several checkpoints.
        thresholds: multilabel decision thresholds (default 0.5); the best ones are searched and saved anyway.
        worst: how many of the lowest-scoring images go to the gallery (and, halved, to each class's gallery of
            the report).
        batch: images per batch.
        workers: DataLoader workers.
        device: ``auto``, ``cpu``, ``cuda``.
        errors: the error breakdown (``errors.parquet``, ``objects.parquet``, ``report.html``).
        boundary_px: width of the boundary band at 512x512 (scaled by the image diagonal).
        fold_of: image id -> fold: checkpoint ``i`` (in fold order) scores fold ``i``'s images, out of fold;
            ``folds.csv`` gives each fold's scores and the pooled ones.
        sliding: predict tile by tile at full resolution (:mod:`train.sliding`) instead of resizing each image.
        overwrite: replace a non-empty ``out``.
        progress: progress bar on a terminal.

    Example:
        >>> res = evaluate(["runs/a/best.pt"], Dataset.load("val.json", "images/"), "eval/")
        >>> print(res.table())
    """
    import pandas as pd
    import torch

    groups = _fold_groups(ckpts, dataset, device, fold_of)
    for _, member, _ in groups:
        _check_classes(member, dataset)
    ens = groups[0][1]
    tta = tta if isinstance(tta, TTA) else TTA.parse(tta)
    multilabel = ens.mode.value == "multilabel"
    names = ens.names
    k = len(names)
    acc, base = MetricAccumulator(ens.mode, names), MetricAccumulator(ens.mode, names)
    search = ThresholdSearch(names) if multilabel else None
    confusion = torch.zeros(k, k, dtype=torch.int64)
    overlap = _overlap(ens)
    images = {img["id"]: img for img in dataset.images}
    errs = ErrorAccumulator(names if multilabel else names[1:], multilabel, boundary_px,
                            max(1, worst // 2) if worst > 0 else 0) if errors else None
    cm = dataset.class_map()
    value_of = {c["id"]: cm.value_of(c["id"]) for c in dataset.categories}
    rows: list[dict[str, Any]] = []
    fold_rows: list[dict[str, Any]] = []
    for fold, member, items in groups:
        fold_acc = MetricAccumulator(ens.mode, names)
        for pred in member.predictions(items, tta=tta, vote=vote, thresholds=thresholds, batch=batch,
                                       workers=workers, progress=progress, sliding=sliding,
                                       keep_full=search is not None):
            target = _target(ens, dataset, images[pred.item.image_id], overlap)
            mask = torch.from_numpy(pred.mask).long()
            counts = acc.update(mask.unsqueeze(0), target.unsqueeze(0))[:, 0]
            fold_acc.add_counts(counts)
            base.update(torch.zeros_like(target).unsqueeze(0), target.unsqueeze(0))
            if search is not None:
                search.update(pred.full, target.to(pred.full.device))
                keep = target != IGNORE_INDEX
                correct = float(((mask == target) & keep).sum()) / max(1, int(keep.sum()))
            else:
                keep = target != IGNORE_INDEX
                confusion += torch.bincount(target[keep] * k + mask[keep], minlength=k * k).view(k, k)
                correct = float((mask[keep] == target[keep]).float().mean()) if bool(keep.any()) else math.nan
            if errs is not None:
                errs.add(pred.item.image_id, pred.item.file_name, pred.item.path, target.numpy().astype(np.uint8),
                         pred.mask, dataset.annotations_of(pred.item.image_id), value_of, fold)
            image_scores = scores_from_counts(counts, ens.mode, names)
            rows.append({"image_id": pred.item.image_id, "file_name": pred.item.file_name,
                         **({"fold": fold} if fold is not None else {}), "score": image_scores.score,
                         "pixel_accuracy": correct,
                         **{f"{image_scores.metric}/{n}": v for n, v in zip(names, image_scores.per_class,
                                                                            strict=True)}})
        if fold is not None:
            fold_rows.append(_fold_row(str(fold), len(items), fold_acc.compute()))
    scores, baseline = acc.compute(), base.compute()
    if fold_rows:
        fold_rows.append(_fold_row("pooled", len(rows), scores))
    table = pd.DataFrame(rows)
    summary = errs.summary(*_class_scores(scores, multilabel)) if errs is not None else None
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
        if fold_rows:
            pd.DataFrame(fold_rows).to_csv(tmp / "folds.csv", index=False)
        if errs is not None and summary is not None:
            errs.errors_frame().to_parquet(tmp / "errors.parquet", index=False)
            errs.objects_frame().to_parquet(tmp / "objects.parquet", index=False)
            summary.to_csv(tmp / "error_breakdown.csv", index=False)
            line = (f"{scores.metric} {scores.score:.4f} (foreground {scores.foreground:.4f}), all-background "
                    f"baseline {baseline.score:.4f}; {len(rows)} images of {dataset.source}")
            from .error_report import render_error_report

            (tmp / "report.html").write_text(render_error_report(
                line, summary, errs.gallery(), multilabel=multilabel, boundary_px=boundary_px,
                title=f"{', '.join(str(p) for p in ckpts)} on {dataset.source}",
                folds=pd.DataFrame(fold_rows) if fold_rows else None), encoding="utf-8")
        _write_gallery(tmp / "gallery", groups, dataset, table, worst, tta, vote, thresholds, overlap, sliding)
        atomic_write_json(tmp / "metrics.json", {
            "metric": scores.metric, "score": _num(scores.score), "foreground": _num(scores.foreground),
            "per_class": {n: {"iou": _num(i), "dice": _num(d), "absent": a} for n, i, d, a in
                          zip(names, scores.iou, scores.dice, scores.absent, strict=True)},
            "absent_from_truth": [n for n, a in zip(names, scores.absent, strict=True) if a],
            "baseline": {"what": "all-empty" if multilabel else "all-background", "score": _num(baseline.score),
                         "foreground": _num(baseline.foreground)},
            "boundary_iou": ({r["class"]: _num(r["boundary_iou"]) for r in summary.to_dict("records")}
                             if summary is not None else None),
            "boundary_px": boundary_px if errs is not None else None,
            "images": len(rows), "ckpts": [str(p) for p in ckpts], "out_of_fold": fold_of is not None,
            "tta": {"views": list(tta.views), "scales": list(tta.scales)}, "vote": vote,
            "sliding_window": None if sliding is None else {"tile": sliding.tile, "stride": sliding.stride,
                                                            "blend": sliding.blend},
        }, indent=2)
    return EvalResult(Path(out), scores, baseline, found, summary)


def _class_scores(scores: Scores, multilabel: bool) -> tuple[tuple[float, ...], tuple[float, ...]]:
    skip = 0 if multilabel else 1
    return scores.iou[skip:], scores.dice[skip:]


def _fold_row(fold: str, images: int, scores: Scores) -> dict[str, Any]:
    return {"fold": fold, "images": images, scores.metric: scores.score, "foreground": scores.foreground,
            **{f"iou/{n}": v for n, v in zip(scores.names, scores.iou, strict=True)}}


def _write_gallery(folder: Path, groups: Sequence[tuple[int | None, Ensemble, list[Any]]], dataset: Dataset,
                   table: Any, worst: int, tta: TTA, vote: bool, thresholds: Sequence[float] | None,
                   overlap: str, sliding: SlidingWindow | None) -> None:
    if worst <= 0 or table.empty:
        return
    folder.mkdir()
    chosen = table.sort_values("score", na_position="first").head(worst)
    order = {image_id: rank for rank, image_id in enumerate(chosen["image_id"].tolist())}
    images = {img["id"]: img for img in dataset.images}
    for _, ens, items in groups:
        subset = [it for it in items if it.image_id in order]
        palette = ens.spec.class_map().palette()
        multilabel = ens.mode.value == "multilabel"
        for pred in ens.predictions(subset, tta=tta, vote=vote, thresholds=thresholds, workers=0, sliding=sliding):
            truth = _target(ens, dataset, images[pred.item.image_id], overlap).numpy()
            tile = _gallery_tile(read_image(pred.item.path), truth, pred.mask, palette, multilabel)
            stem = PurePosixPath(pred.item.file_name).stem
            (folder / f"{order[pred.item.image_id]:02d}_{stem}.jpg").write_bytes(encode_image(tile, ".jpg", 90))


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)

"""Segmentation metrics with ``smp.metrics``: IoU (multiclass) or Dice (multilabel), per class and overall.

Counts (tp, fp, fn, tn per class) are summed over the whole set, then scored, so the per-class figures are the
dataset-level ones (as mmsegmentation reports them). A class that neither the targets nor the predictions
contain has no score (NaN). A class the targets do not contain (an empty placeholder category, a class missing
from a validation fold) is reported, marked absent, but left out of every mean: otherwise the false positives of a
model would count as IoU 0 in its mean while the all-background baseline, which predicts nothing there, leaves the
class out of its own, and the model would look worse than the baseline for a class nobody can score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from datatools.core.classes import IGNORE_INDEX

from .config import Mode

__all__ = ["MetricAccumulator", "Scores", "metric_name", "stats"]


def metric_name(mode: Mode) -> str:
    """``miou`` for multiclass runs, ``dice`` for multilabel ones."""
    return "dice" if mode is Mode.MULTILABEL else "miou"


def stats(pred: Any, target: Any, mode: Mode, num_classes: int) -> tuple[Any, Any, Any, Any]:
    """Per-image, per-class counts ``(tp, fp, fn, tn)``, each (N, C) int64, from ``smp.metrics.get_stats``.

    Args:
        pred: multiclass (N, H, W) int64 class values; multilabel (N, C, H, W) 0/1.
        target: same shape; 255 marks ignored pixels (in every plane when multilabel).
        mode: multiclass or multilabel.
        num_classes: C (background included for multiclass).
    """
    import torch
    from segmentation_models_pytorch import metrics

    if mode is Mode.MULTILABEL:  # smp has no ignore_index for multilabel: ignored pixels become true negatives
        keep = target != IGNORE_INDEX
        pred = torch.where(keep, pred, 0).long()
        target = torch.where(keep, target, 0).long()
        return metrics.get_stats(pred, target, mode="multilabel")
    return metrics.get_stats(pred.long(), target.long(), mode="multiclass", num_classes=num_classes,
                             ignore_index=IGNORE_INDEX)


@dataclass(frozen=True)
class Scores:
    """Scores of a whole set.

    Attributes:
        metric: ``miou`` or ``dice``.
        score: mean of the per-class scores that exist (background included for multiclass).
        per_class: one score per class (NaN where the class is absent from targets and predictions).
        iou: per-class IoU.
        dice: per-class Dice (F1).
        names: class names, background first for multiclass.
        absent: True for each class the targets do not contain; such a class is left out of every mean.
    """

    metric: str
    score: float
    per_class: tuple[float, ...]
    iou: tuple[float, ...]
    dice: tuple[float, ...]
    names: tuple[str, ...]
    absent: tuple[bool, ...] = ()

    def mean(self, values: Sequence[float], skip: int = 0) -> float:
        """Mean of per-class ``values`` over the classes present in the targets (NaN left out), from class ``skip``.

        Example:
            >>> scores.mean(scores.dice), scores.mean(scores.iou, skip=1)  # mean Dice; mean IoU without background
        """
        import math

        absent = self.absent or (False,) * len(values)
        kept = [v for v, a in list(zip(values, absent, strict=True))[skip:] if not a and not math.isnan(v)]
        return sum(kept) / len(kept) if kept else float("nan")

    @property
    def foreground(self) -> float:
        """Mean score without the background class (multiclass); the score itself for multilabel."""
        return self.mean(self.per_class, skip=1 if self.metric == "miou" else 0)

    def rows(self) -> list[dict[str, Any]]:
        """One row per class: name, IoU, Dice."""
        return [{"class": n, "iou": i, "dice": d} for n, i, d in zip(self.names, self.iou, self.dice, strict=True)]


class MetricAccumulator:
    """Sum smp counts over batches and score them once.

    Example:
        >>> acc = MetricAccumulator(Mode.MULTICLASS, ["background", "cat", "dog"])
        >>> acc.update(logits.argmax(1), target)
        >>> acc.compute().score
        0.71
    """

    def __init__(self, mode: Mode, names: Sequence[str]) -> None:
        import torch

        self.mode = mode
        self.names = tuple(names)
        self.counts = torch.zeros(4, len(self.names), dtype=torch.int64)

    def update(self, pred: Any, target: Any) -> Any:
        """Add a batch; returns its per-image (tp, fp, fn, tn) stacked as (4, N, C) for per-image use."""
        import torch

        tp, fp, fn, tn = stats(pred, target, self.mode, len(self.names))
        per_image = torch.stack([tp, fp, fn, tn]).cpu()
        self.counts += per_image.sum(dim=1)
        return per_image

    def add_counts(self, counts: Any) -> None:
        """Add (4, C) counts, e.g. those gathered from other processes."""
        self.counts += counts.to(self.counts)

    def compute(self) -> Scores:
        """Per-class and mean scores of everything added so far."""
        return scores_from_counts(self.counts, self.mode, self.names)


def scores_from_counts(counts: Any, mode: Mode, names: Sequence[str]) -> Scores:
    """Score (4, C) summed counts (tp, fp, fn, tn) with ``smp.metrics.iou_score`` and ``f1_score``."""
    import torch
    from segmentation_models_pytorch import metrics

    tp, fp, fn, tn = (c.unsqueeze(0) for c in counts.to(torch.int64))
    nan = float("nan")
    iou = metrics.iou_score(tp, fp, fn, tn, reduction="none", zero_division=nan)[0]
    dice = metrics.f1_score(tp, fp, fn, tn, reduction="none", zero_division=nan)[0]
    per_class = dice if mode is Mode.MULTILABEL else iou
    absent = tuple(bool(v) for v in ((tp + fn)[0] == 0).tolist())
    scores = Scores(metric_name(mode), nan, tuple(per_class.tolist()), tuple(iou.tolist()), tuple(dice.tolist()),
                    tuple(names), absent)
    return replace(scores, score=scores.mean(scores.per_class))

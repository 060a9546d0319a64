"""Per-class probability thresholds for multilabel models: parsing, and the search on a validation set.

The search keeps, per class, a 100-bin histogram of the predicted probability of positive and of negative
pixels, so every threshold is scored in one pass without holding any probability map.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datatools.core.errors import InvalidDatasetError, UnreadableFileError

__all__ = ["BINS", "ThresholdSearch", "parse_thresholds"]

BINS = 100  #: thresholds are searched on multiples of 1/BINS
_GRID = range(5, 96)  #: 0.05 .. 0.95


def parse_thresholds(value: str | float | Sequence[float] | None, names: Sequence[str]) -> tuple[float, ...]:
    """Thresholds, one per class, from ``0.5``, ``0.4,0.5,...`` (one per class) or a ``thresholds.json``.

    ``thresholds.json`` is what ``evaluate`` writes: ``{"thresholds": {"class name": 0.45, ...}}``.

    Raises:
        InvalidDatasetError: wrong count, a value outside (0, 1), or a file naming unknown classes.

    Example:
        >>> parse_thresholds("0.4", ["a", "b"])
        (0.4, 0.4)
    """
    k = len(names)
    if value is None:
        values: list[float] = [0.5] * k
    elif isinstance(value, int | float):
        values = [float(value)] * k
    elif isinstance(value, str) and (value.endswith(".json") or Path(value).is_file()):
        values = _from_file(Path(value), names)
    elif isinstance(value, str):
        try:
            values = [float(v) for v in value.split(",")]
        except ValueError:
            raise InvalidDatasetError(f"--thresholds {value!r}: expected auto, a number, one number per class, "
                                      "or a thresholds.json") from None
        values = values * k if len(values) == 1 else values
    else:
        values = [float(v) for v in value]
    if len(values) != k:
        raise InvalidDatasetError(f"--thresholds: {len(values)} values for {k} classes ({', '.join(names)})")
    if not all(0 < v < 1 for v in values):
        raise InvalidDatasetError(f"--thresholds: every threshold must lie in (0, 1), got {values}")
    return tuple(values)


def _from_file(path: Path, names: Sequence[str]) -> list[float]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))["thresholds"]
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: thresholds file not found") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise UnreadableFileError(f"{path}: not a thresholds.json written by evaluate ({exc})") from None
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise InvalidDatasetError(f"{path}: classes {unknown} are not classes of the model")
    return [float(data.get(n, 0.5)) for n in names]


class ThresholdSearch:
    """Accumulate per-class histograms; :meth:`best` gives the Dice-maximising threshold of each class.

    Example:
        >>> search = ThresholdSearch(["radius", "ulna"])
        >>> search.update(probs, target)      # (K, H, W) float and (K, H, W) 0/1 (255 ignore)
        >>> thresholds, dice = search.best()
    """

    def __init__(self, names: Sequence[str]) -> None:
        import torch

        self.names = tuple(names)
        self.pos = torch.zeros(len(names), BINS + 1, dtype=torch.int64)
        self.neg = torch.zeros(len(names), BINS + 1, dtype=torch.int64)

    def update(self, probs: Any, target: Any) -> None:
        """Add one image (or a batch with a leading axis): probabilities and 0/1 targets, 255 ignored."""
        import torch

        k = len(self.names)
        probs = probs.reshape(-1, k, *probs.shape[-2:]) if probs.dim() == 4 else probs.unsqueeze(0)
        target = target.reshape(probs.shape)
        bins = (probs.float() * BINS).floor().clamp_(0, BINS).long()
        offset = torch.arange(k, device=bins.device).view(1, k, 1, 1) * (BINS + 1)
        idx = bins + offset
        for value, hist in ((1, self.pos), (0, self.neg)):
            sel = target == value
            counts = torch.bincount(idx[sel], minlength=k * (BINS + 1)).view(k, BINS + 1)
            hist += counts.cpu()

    def dice_at(self, bin_index: Any) -> Any:
        """(K,) Dice when class c is positive where floor(prob * BINS) >= bin_index[c]."""
        import torch

        pos_ge = self.pos.flip(1).cumsum(1).flip(1)  # pixels with bin >= b
        neg_ge = self.neg.flip(1).cumsum(1).flip(1)
        b = torch.as_tensor(bin_index).view(-1, 1)
        tp = pos_ge.gather(1, b).squeeze(1).double()
        fp = neg_ge.gather(1, b).squeeze(1).double()
        fn = self.pos.sum(1).double() - tp
        denom = 2 * tp + fp + fn
        return torch.where(denom > 0, 2 * tp / denom.clamp(min=1), torch.full_like(denom, math.nan))

    def best(self) -> tuple[tuple[float, ...], tuple[float, ...]]:
        """``(thresholds, dice at them)`` per class; 0.5 for a class never present in targets or predictions."""
        import torch

        grid = torch.tensor(list(_GRID))
        table = torch.stack([self.dice_at(torch.full((len(self.names),), int(g))) for g in grid], dim=1)  # (K, G)
        filled = torch.nan_to_num(table, nan=-1.0)
        pick = filled.argmax(dim=1)
        thresholds = tuple(float(grid[i]) / BINS if filled[c, i] >= 0 else 0.5 for c, i in enumerate(pick.tolist()))
        dice = tuple(float(table[c, i]) for c, i in enumerate(pick.tolist()))
        return thresholds, dice

    def save(self, path: str | os.PathLike[str]) -> tuple[float, ...]:
        """Write ``thresholds.json`` (what ``predict --thresholds FILE`` reads); returns the thresholds."""
        from datatools.core.atomic import atomic_write_json

        thresholds, dice = self.best()
        at_half = self.dice_at(_full(len(self.names), BINS // 2)).tolist()
        atomic_write_json(path, {
            "thresholds": dict(zip(self.names, thresholds, strict=True)),
            "dice_at_threshold": {n: _num(d) for n, d in zip(self.names, dice, strict=True)},
            "dice_at_0.5": {n: _num(d) for n, d in zip(self.names, at_half, strict=True)},
        }, indent=2)
        return thresholds


def _full(k: int, value: int) -> Any:
    import torch

    return torch.full((k,), value, dtype=torch.int64)


def _num(value: float) -> float | None:
    return None if math.isnan(value) else round(float(value), 6)


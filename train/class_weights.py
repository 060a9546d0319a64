"""``fit --class-weights``: per-output weights of the cross-entropy part of the loss, from pixel shares.

With ``f_c`` the share of the training pixels of output ``c`` (background first when multiclass; from the same
measured areas as :func:`train.prior.class_prior`):

- ``inverse``: ``1 / f_c``;
- ``sqrt-inverse``: ``1 / sqrt(f_c)``;
- ``auto``: median-frequency balancing, ``median(f) / f_c`` (Eigen and Fergus 2015);
- a JSON file: a list with one weight per output, or an object ``{"class name": weight}`` (others 1).

Computed weights are scaled to a mean of 1 over the outputs that have pixels; an output without pixels gets 1 (it
never meets a target pixel). Shares are floored at :data:`train.prior.FLOOR`.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path

from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError

from .config import Mode
from .prior import FLOOR, class_prior

__all__ = ["WEIGHT_RULES", "class_weights", "weights_from_shares"]

WEIGHT_RULES = ("auto", "inverse", "sqrt-inverse")


def weights_from_shares(shares: Sequence[float], rule: str) -> list[float]:
    """Weights of ``rule`` for outputs with pixel shares ``shares`` (mean 1 over those with pixels).

    Example:
        >>> weights_from_shares([0.9, 0.1], "inverse")
        [0.2, 1.8]
    """
    present = [f > 0 for f in shares]
    f = [max(v, FLOOR) for v in shares]
    if rule == "inverse":
        raw = [1 / v for v in f]
    elif rule == "sqrt-inverse":
        raw = [1 / math.sqrt(v) for v in f]
    elif rule == "auto":
        kept = sorted(v for v, p in zip(f, present, strict=True) if p)
        mid = len(kept) // 2
        median = (kept[mid] if len(kept) % 2 else (kept[mid - 1] + kept[mid]) / 2) if kept else 1.0
        raw = [median / v for v in f]
    else:
        raise ValueError(f"unknown class-weight rule {rule!r}")
    used = [w for w, p in zip(raw, present, strict=True) if p]
    scale = len(used) / sum(used) if used else 1.0
    return [w * scale if p else 1.0 for w, p in zip(raw, present, strict=True)]


def _from_file(path: str, names: Sequence[str]) -> list[float]:
    try:
        values = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise DatatoolsError(f"{path}: not a readable JSON file of class weights") from None
    if isinstance(values, dict):
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise DatatoolsError(f"{path}: unknown class(es) {', '.join(map(str, unknown))}; the outputs are "
                                 f"{', '.join(names)}")
        values = [values.get(n, 1.0) for n in names]
    if not isinstance(values, list) or len(values) != len(names):
        raise DatatoolsError(f"{path}: expected {len(names)} weights ({', '.join(names)}) or an object of them")
    try:
        weights = [float(v) for v in values]
    except (TypeError, ValueError):
        raise DatatoolsError(f"{path}: class weights must be numbers") from None
    if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
        raise DatatoolsError(f"{path}: class weights must be finite, >= 0 and not all 0")
    return weights


def class_weights(spec: str | os.PathLike[str], datasets: Sequence[Dataset], mode: Mode,
                  names: Sequence[str]) -> list[float]:
    """One weight per model output (``names``: the outputs' display names, background first when multiclass).

    Raises:
        DatatoolsError: a weights file that does not fit the outputs.
    """
    text = str(spec)
    if text not in WEIGHT_RULES:
        return _from_file(text, names)
    prior = class_prior(datasets)
    shares = prior if mode is Mode.MULTILABEL else [max(0.0, 1.0 - sum(prior)), *prior]
    return weights_from_shares(shares, text)

"""Losses from ``smp.losses`` (and torch's cross-entropy), all ignoring the value 255."""

from __future__ import annotations

from typing import Any

from datatools.core.classes import IGNORE_INDEX

from .config import LossName, Mode

__all__ = ["build_loss"]


def _single(name: str, mode: Mode, weights: Any = None) -> Any:
    import torch
    from segmentation_models_pytorch import losses

    smp_mode = losses.MULTILABEL_MODE if mode is Mode.MULTILABEL else losses.MULTICLASS_MODE
    if name == "ce":
        if mode is Mode.MULTILABEL:
            plane = None if weights is None else weights.view(-1, 1, 1)
            return losses.SoftBCEWithLogitsLoss(weight=plane, ignore_index=IGNORE_INDEX)
        return torch.nn.CrossEntropyLoss(weight=weights, ignore_index=IGNORE_INDEX)
    if name == "dice":
        return losses.DiceLoss(smp_mode, from_logits=True, ignore_index=IGNORE_INDEX)
    if name == "focal":
        # smp's multilabel focal indexes each (N, H, W) plane with the (N, C, H, W) ignore mask and fails; binary
        # mode over all planes at once gives the same mean (every plane has the same pixels) and masks correctly
        binary = losses.BINARY_MODE if mode is Mode.MULTILABEL else smp_mode
        return losses.FocalLoss(binary, ignore_index=IGNORE_INDEX)
    if name == "lovasz":
        return losses.LovaszLoss(smp_mode, ignore_index=IGNORE_INDEX)
    raise ValueError(f"unknown loss {name!r}")


class _Sum:
    """Sum of losses; a plain callable so it needs no nn.Module state."""

    def __init__(self, parts: list[Any]) -> None:
        self.parts = parts

    def __call__(self, logits: Any, target: Any) -> Any:
        return sum(part(logits, target) for part in self.parts)


def build_loss(name: str | LossName, mode: Mode, weights: Any = None) -> Any:
    """A loss callable ``loss(logits, target)``.

    Args:
        name: ``ce``, ``dice``, ``focal``, ``lovasz``, ``ce+dice`` or ``focal+dice``.
        mode: multiclass: logits (N, C, H, W), target (N, H, W) int64; multilabel: target (N, C, H, W)
            float 0/1. Target pixels equal to 255 add nothing to the loss or its gradient.
        weights: per-output weights (a tensor on the logits' device) for the ``ce`` part; the other losses take
            none.

    Raises:
        ValueError: weights for a loss without a ``ce`` part.

    Example:
        >>> loss = build_loss("ce+dice", Mode.MULTICLASS)
        >>> value = loss(torch.randn(2, 3, 8, 8), torch.randint(0, 3, (2, 8, 8)))
    """
    name = LossName(name).value
    if weights is not None and "ce" not in name.split("+"):
        raise ValueError(f"class weights apply to the ce part of the loss; --loss {name} has none (use ce or ce+dice)")
    parts = [_single(part, mode, weights if part == "ce" else None) for part in name.split("+")]
    return parts[0] if len(parts) == 1 else _Sum(parts)

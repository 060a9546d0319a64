"""The optimiser and the learning-rate schedule of ``fit`` (per optimiser step)."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from .config import Optimizer, Scheduler, TrainConfig

__all__ = ["build_optimizer", "lr_lambda"]


def lr_lambda(config: TrainConfig, total_steps: int) -> Callable[[int], float]:
    """The learning-rate factor of optimiser step ``step``: linear warm-up over ``config.warmup`` of the steps,
    then cosine or poly (power 0.9) decay to 0 (a ``LambdaLR`` function)."""
    warm = int(config.warmup * total_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        p = min(1.0, (step - warm) / max(1, total_steps - warm))
        return 0.5 * (1 + math.cos(math.pi * p)) if config.scheduler is Scheduler.COSINE else (1 - p) ** 0.9

    return factor


def build_optimizer(config: TrainConfig, params: Any) -> Any:
    """AdamW (decoupled weight decay) or SGD (momentum 0.9, Nesterov) over ``params``."""
    import torch

    if config.optimizer is Optimizer.SGD:
        return torch.optim.SGD(params, lr=config.lr, momentum=0.9, nesterov=True, weight_decay=config.weight_decay)
    return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)

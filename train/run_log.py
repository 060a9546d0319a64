"""``fit --log tensorboard``: each epoch's history row as TensorBoard scalars, through torch's own writer.

The event files go to ``<run>/tensorboard/``; ``tensorboard --logdir <run>`` shows them. history.csv is written
either way.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from datatools.core.errors import DatatoolsError

from .config import LogKind

__all__ = ["RunLog", "check_log"]

#: history columns that are not curves
_SKIP = {"epoch"}


def check_log(kind: LogKind) -> None:
    """Fail before training when the writer's package is missing.

    Raises:
        DatatoolsError: ``tensorboard`` without the tensorboard package.
    """
    if kind is LogKind.TENSORBOARD:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise DatatoolsError("--log tensorboard needs the tensorboard package: pip install "
                                 "'datatools[train]'") from None


class RunLog:
    """Writes history rows to the logs ``kind`` asks for (nothing for ``none`` or in a non-main process).

    Example:
        >>> with RunLog(Path("runs/a"), LogKind.TENSORBOARD) as log:
        ...     log.epoch({"epoch": 1, "train_loss": 0.7, "val_miou": 0.4})
    """

    def __init__(self, out: Path, kind: LogKind, enabled: bool = True) -> None:
        self.writer: Any = None
        if enabled and kind is LogKind.TENSORBOARD:
            check_log(kind)
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(log_dir=str(out / "tensorboard"))

    def epoch(self, row: dict[str, Any]) -> None:
        """Every finite number of the row as a scalar at step ``row['epoch']``."""
        if self.writer is None:
            return
        for key, value in row.items():
            if key not in _SKIP and isinstance(value, int | float) and math.isfinite(value):
                self.writer.add_scalar(key, float(value), int(row["epoch"]))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def __enter__(self) -> RunLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

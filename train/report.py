"""What a run leaves besides checkpoints: ``history.csv``, ``curves.png`` and the per-class table."""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from datatools.core.atomic import atomic_write_bytes, atomic_write_text

from .metrics import Scores

__all__ = ["format_table", "progress_bar", "write_class_curves", "write_curves", "write_history", "write_per_class"]


def write_history(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]]) -> None:
    """One row per epoch; columns in first-seen order (per-class columns come after the overall ones)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


def write_curves(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]], metric: str) -> None:
    """Loss (train, validation) and the validation metric against the epoch, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train_loss", "train"), ("val_loss", "validation")):
        values = [r.get(key, math.nan) for r in rows]
        if any(not math.isnan(float(v)) for v in values):
            ax_loss.plot(epochs, values, marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    values = [r.get(f"val_{metric}", math.nan) for r in rows]
    ax_metric.plot(epochs, values, marker="o", color="tab:green")
    ax_metric.set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())


def write_class_curves(path: str | os.PathLike[str], rows: Sequence[dict[str, Any]], metric: str,
                       names: Sequence[str]) -> bool:
    """Each class's validation metric (history columns ``<metric>/<class>``) against the epoch, as a PNG;
    False (nothing written) when the history has no such column (no validation set)."""
    keys = [(name, f"{metric}/{name}") for name in names]
    if not any(key in row for row in rows for _, key in keys):
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(8, 4.5))
    epochs = [r["epoch"] for r in rows]
    for name, key in keys:
        ax.plot(epochs, [float(r.get(key, math.nan)) for r in rows], marker="o", markersize=3, label=name)
    ax.set(xlabel="epoch", ylabel=metric, title=f"validation {metric} per class", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.legend(fontsize="small", loc="center left", bbox_to_anchor=(1.01, 0.5))
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
    return True


def write_per_class(path: str | os.PathLike[str], scores: Scores) -> None:
    """``class,iou,dice,absent`` per class (empty where the class never occurs), then the mean row.

    ``absent`` is ``true`` for a class the targets do not contain: left out of the mean row.
    """
    lines = ["class,iou,dice,absent"]
    absent = scores.absent or (False,) * len(scores.names)
    for row, gone in zip(scores.rows(), absent, strict=True):
        lines.append(f"{_csv(row['class'])},{_num(row['iou'])},{_num(row['dice'])},{str(gone).lower()}")
    lines.append(f"mean,{_num(scores.mean(scores.iou))},{_num(scores.mean(scores.dice))},")
    atomic_write_text(Path(path), "\n".join(lines) + "\n")


def _csv(text: str) -> str:
    """A CSV field (RFC 4180): quoted when it holds a comma, a quote, a line break or edge spaces."""
    if any(c in text for c in ',"\r\n') or text != text.strip():
        return '"' + text.replace('"', '""') + '"'
    return text


def _num(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.4f}"


def format_table(scores: Scores, baseline: Scores | None = None) -> str:
    """A plain-text per-class table (IoU, Dice, and the baseline's IoU when given)."""
    width = max([len(n) for n in scores.names] + [5])
    head = f"{'class':<{width}}  {'IoU':>7}  {'Dice':>7}" + (f"  {'base IoU':>8}" if baseline else "")
    lines = [head, "-" * len(head)]
    absent = scores.absent or (False,) * len(scores.names)
    for k, name in enumerate(scores.names):
        line = f"{name:<{width}}  {_cell(scores.iou[k]):>7}  {_cell(scores.dice[k]):>7}"
        if baseline:
            line += f"  {_cell(baseline.iou[k]):>8}"
        lines.append(line + ("  absent from the truth: not in the mean" if absent[k] else ""))
    lines.append("-" * len(head))
    mean = f"{'mean':<{width}}  {_cell(scores.mean(scores.iou)):>7}  {_cell(scores.mean(scores.dice)):>7}"
    if baseline:
        mean += f"  {_cell(baseline.mean(baseline.iou)):>8}"
    lines.append(mean)
    return "\n".join(lines)


def _cell(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.4f}"


def progress_bar(enabled: bool) -> Any:
    """The rich progress bar of a fit's epochs (loss and speed columns), on stderr at a terminal only."""
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}"), TextColumn("{task.fields[speed]:.1f} img/s"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=console,
                    disable=not enabled or not console.is_terminal)

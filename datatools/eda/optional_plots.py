"""Figures for the optional report sections: per-fold balance (``--folds``) and meta data (``--meta``)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np

from datatools.core.classes import plot_label
from datatools.eda.compare_report import split_distributions
from datatools.eda.plots import _NORMAL, _figure, _label_inches, _margins, _matrix, _png, hist

__all__ = ["EXTRA_PLOTS"]

#: inches per character of a bold 10 pt title (DejaVu Sans Bold averages about 0.65 em)
_TITLE_CHAR_INCHES = 0.65 * 10 / 72


def _wrap_title(title: str, width: float) -> tuple[str, float]:
    """The title wrapped to ``width`` inches (the axes' width), and the top margin its lines need."""
    text = textwrap.fill(title, max(20, int(width / _TITLE_CHAR_INCHES)))
    return text, 0.2 + 0.19 * (text.count("\n") + 1)


def fold_balance(folds: list[int], labels: list[str], shares: list[list[float]], overall: list[float],
                 title: str) -> bytes:
    """Each fold's class share (number, %) coloured by its deviation from the whole (percentage points)."""
    s = 100 * np.asarray(shares, dtype=float).reshape(len(folds), len(labels))
    o = 100 * np.asarray(overall, dtype=float)
    dev = np.vstack([s - o[None, :], np.zeros((1, len(labels)))])
    text = [[f"{v:.1f}" for v in row] for row in s] + [[f"{v:.1f}" for v in o]]
    lim = max(float(np.abs(dev).max()), 0.5)
    k = len(labels)
    room = _label_inches(labels, 8)
    width = max(6.5, 1.0 + 1.6 + 0.8 * k)
    title, top = _wrap_title(title, width - 1.0 - 1.6)
    fig = _figure(width, room * 0.7 + top + 0.25 + 0.36 * (len(folds) + 1))
    _margins(fig, left=1.0, right=1.6, bottom=room * 0.7, top=top)
    ax = fig.subplots()
    im = _matrix(ax, dev, text, labels, "RdBu_r", -lim, lim)
    ax.set_yticks(range(len(folds) + 1), [f"fold {f}" for f in folds] + ["all"])
    ax.axhline(len(folds) - 0.5, color="black", lw=1)
    fig.colorbar(im, ax=ax, label="deviation, points", shrink=0.9)
    ax.set_title(title)
    return _png(fig)


def meta_distributions(columns: list[dict[str, Any]]) -> bytes:
    """One small panel per meta column: a histogram (numeric) or category counts."""
    n = len(columns)
    cols = min(n, 3)
    rows = -(-n // cols)
    fig = _figure(3.5 * cols, 2.5 * rows)
    longest = max((_label_inches(c["categories"]) for c in columns if c["kind"] != "numeric"), default=0.5)
    _margins(fig, left=max(0.5, longest), bottom=0.5, wspace=0.25 + longest / 3.5, hspace=0.55)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, col in zip(axes, columns, strict=False):
        if col["kind"] == "numeric":
            vals = np.array([v for v in col["values"] if v is not None], dtype=float)
            hist(ax, vals, 25, _NORMAL)
            if len(vals):
                ax.set_title(f"{plot_label(col['name'])} (median {np.median(vals):.3g})")
        else:
            counts = [sum(1 for v in col["values"] if v == c) for c in col["categories"]]
            ax.barh(range(len(counts)), counts, color=_NORMAL)
            ax.set_yticks(range(len(counts)), [plot_label(str(c)) for c in col["categories"]])
            ax.invert_yaxis()
            ax.set_title(plot_label(col["name"]))
        ax.set_xlabel("images" if col["kind"] != "numeric" else "")
    for ax in axes[n:]:
        ax.set_visible(False)
    return _png(fig)


def meta_relation(names: list[str], labels: list[str], values: list[list[float]], title: str,
                  value_label: str, diverging: bool) -> bytes:
    """A (rows x classes) matrix: Spearman correlations of numeric columns, or class presence per category."""
    m = np.asarray(values, dtype=float).reshape(len(names), len(labels))
    text = [["" if np.isnan(v) else f"{v:.2f}" for v in row] for row in m]
    k = len(labels)
    room, left = _label_inches(labels, 8), _label_inches(names, 8)
    width = max(6.5, left + 1.6 + 0.8 * k)
    title, top = _wrap_title(title, width - left - 1.6)
    fig = _figure(width, room * 0.7 + top + 0.25 + 0.36 * len(names))
    _margins(fig, left=left, right=1.6, bottom=room * 0.7, top=top)
    ax = fig.subplots()
    im = _matrix(ax, np.nan_to_num(m), text, labels, "RdBu_r" if diverging else "viridis",
                 -1 if diverging else 0, 1)
    ax.set_yticks(range(len(names)), names)
    fig.colorbar(im, ax=ax, label=value_label, shrink=0.9)
    ax.set_title(title)
    return _png(fig)


EXTRA_PLOTS: dict[str, Callable[..., bytes]] = {
    "fold_balance": fold_balance,
    "meta_distributions": meta_distributions,
    "meta_relation": meta_relation,
    "split_distributions": split_distributions,
}

"""How balanced a split is: per class and validation fold, the share of images / instances / pixels.

For fold ``f`` (its validation images) and class ``c``:

* image share: images of the fold holding ``c`` / images of the fold;
* instance share: instances of ``c`` in the fold / all instances in the fold;
* pixel share: pixels of ``c`` in the fold / all labelled pixels in the fold;

each next to the same share over the whole dataset, and the deviation (fold minus whole, in share units).
"""

from __future__ import annotations

import os
import textwrap
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from datatools.core.classes import plot_label
from datatools.folds.labels import ImageLabels

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["MEASURES", "balance_table", "max_share_deviation", "plot_balance"]

#: (column prefix, ImageLabels attribute) of each measure, in report order.
MEASURES = (("image", "presence"), ("instance", "instances"), ("pixel", "pixels"))


def _shares(values: npt.NDArray[np.float64], denominator: npt.NDArray[np.float64] | float) -> npt.NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        out = values / denominator
    return np.nan_to_num(out, nan=0.0, posinf=0.0)


def max_share_deviation(presence: npt.NDArray[np.bool_], folds: npt.NDArray[np.integer], k: int | None = None) -> float:
    """Largest |image share of a class in a validation fold - its share in the whole dataset|.

    Args:
        presence: (N, K) bool, image holds class.
        folds: (N,) fold of each image.
        k: number of folds (default: ``folds.max() + 1``).

    Example:
        >>> p = np.array([[1], [1], [0], [0]], dtype=bool)
        >>> max_share_deviation(p, np.array([0, 0, 1, 1]))
        0.5
    """
    folds = np.asarray(folds)
    k = int(folds.max()) + 1 if k is None else k
    whole = presence.mean(axis=0)
    worst = 0.0
    for f in range(k):
        val = presence[folds == f]
        if len(val):
            worst = max(worst, float(np.abs(val.mean(axis=0) - whole).max(initial=0.0)))
    return worst


def balance_table(labels: ImageLabels, folds: npt.NDArray[np.integer], k: int) -> pd.DataFrame:
    """One row per validation fold and class: counts, shares, whole-dataset shares and deviations.

    Columns: ``fold, class, category_id, val_images`` and for each measure ``m`` in image / instance / pixel:
    ``{m}s`` (count or pixels), ``{m}_share``, ``{m}_share_all``, ``{m}_dev``.

    Example:
        >>> table = balance_table(image_labels(ds), folds, 5)
        >>> float(table["image_dev"].abs().max()) < 0.05
        True
    """
    import pandas as pd

    folds = np.asarray(folds)
    n_classes = len(labels.class_names)
    columns: dict[str, list[object]] = {"fold": [], "class": [], "category_id": [], "val_images": []}
    for prefix, _ in MEASURES:
        for suffix in ("s", "_share", "_share_all", "_dev"):
            columns[prefix + suffix] = []
    whole = {}
    for prefix, attr in MEASURES:
        values = getattr(labels, attr).astype(np.float64)
        denom = float(len(values)) if prefix == "image" else float(values.sum())
        whole[prefix] = _shares(values.sum(axis=0), denom)
    for f in range(k):
        in_fold = folds == f
        n_val = int(in_fold.sum())
        per_measure = {}
        for prefix, attr in MEASURES:
            values = getattr(labels, attr)[in_fold].astype(np.float64).sum(axis=0)
            denom = float(n_val) if prefix == "image" else float(values.sum())
            per_measure[prefix] = (values, _shares(values, denom))
        for c in range(n_classes):
            columns["fold"].append(f)
            columns["class"].append(labels.class_names[c])
            columns["category_id"].append(labels.category_ids[c])
            columns["val_images"].append(n_val)
            for prefix, _ in MEASURES:
                values, share = per_measure[prefix]
                columns[prefix + "s"].append(float(values[c]) if prefix == "pixel" else int(values[c]))
                columns[prefix + "_share"].append(float(share[c]))
                columns[prefix + "_share_all"].append(float(whole[prefix][c]))
                columns[prefix + "_dev"].append(float(share[c] - whole[prefix][c]))
    return pd.DataFrame(columns)


def plot_balance(table: pd.DataFrame, path: str | os.PathLike[str], *, k: int | None = None, title: str = "") -> Path:
    """Heat maps (fold x class) of the share deviation, in percentage points, for images, instances, pixels.

    The PNG bytes depend only on the table (rendered by Agg, without the "Software" metadata entry).

    Example:
        >>> plot_balance(balance_table(labels, folds, 5), "balance.png", k=5)
        PosixPath('balance.png')
    """
    from matplotlib.figure import Figure  # no pyplot: the Agg canvas renders it, the user's backend is untouched

    category_ids = list(dict.fromkeys(table["category_id"].tolist()))
    label_of = dict(zip(table["category_id"].tolist(), table["class"].tolist(), strict=True))
    classes = [plot_label(str(label_of[c])) for c in category_ids]
    k = int(table["fold"].max()) + 1 if k is None else k
    n_classes = len(category_ids)
    width = min(4 + 0.55 * n_classes, 40)
    ticks = n_classes <= 60
    room = 0.07 * max((len(c) for c in classes), default=0) if ticks else 0.0  # rotated class names, bottom only
    fig = Figure(figsize=(width, 1.2 + room + 3 * (0.9 + 0.35 * k)), dpi=100, layout="constrained")
    axes = fig.subplots(3, 1, squeeze=False)[:, 0]
    names = {"image": "images holding the class", "instance": "instances", "pixel": "labelled pixels"}
    for ax, (prefix, _) in zip(axes, MEASURES, strict=True):
        if not n_classes:
            ax.set_axis_off()
            ax.text(0.5, 0.5, "the dataset has no classes", ha="center", va="center")
            continue
        dev = 100 * table.pivot(index="fold", columns="category_id", values=prefix + "_dev")
        dev = dev.reindex(columns=category_ids).to_numpy()
        lim = max(float(np.abs(dev).max()), 0.5)
        im = ax.imshow(dev, cmap="RdBu_r", vmin=-lim, vmax=lim, aspect="auto", interpolation="nearest")
        ax.set_yticks(range(k), [f"fold {f}" for f in range(k)])
        last = ax is axes[-1]
        ax.set_xticks(range(n_classes), classes if ticks and last else [""] * n_classes, rotation=60, ha="right",
                      rotation_mode="anchor", fontsize=8)
        ax.set_title(f"share of {names[prefix]}: fold minus whole dataset (points); max |dev| "
                     f"{float(np.abs(dev).max()):.2f}", fontsize=9)
        if n_classes <= 20 and k <= 10:
            for (f, c), v in np.ndenumerate(dev):
                ax.text(c, f, f"{v:+.1f}", ha="center", va="center", fontsize=7,
                        color="white" if abs(v) > 0.6 * lim else "black")
        fig.colorbar(im, ax=ax, fraction=0.03, pad=0.01)
    if title:
        fig.suptitle(textwrap.fill(title, width=int(width * 11)), fontsize=10)
    path = Path(path)
    fig.savefig(path, format="png", metadata={"Software": None})
    return path

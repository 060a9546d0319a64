"""The resolution ceiling (``datatools eda --train-size N[,M...]``): the best any model trained at side N can score.

Each ground-truth mask (the one rasteriser, the eda's ``--overlap`` policy) goes down to N x N as the trainer
feeds it and back to the image's size as ``train predict`` returns it, through the trainer's own resize functions
(:func:`datatools_train.resize.round_trip`, torch-free); per class, the IoU, Dice and Boundary IoU of that round
trip against the original, summed over the images like evaluate's scores. Images stream through the parallel map;
no mask outlives its image.

Written into the eda folder: ``ceiling.parquet`` (size, class, iou, dice, boundary_iou, truth_px), ``ceiling.png``
and a "Resolution ceiling" section of ``report.html``.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.atomic import atomic_write_bytes, atomic_write_text
from datatools.core.classes import IGNORE_INDEX, ClassMap, plot_label
from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError
from datatools.core.masks import rasterize_semantic
from datatools.core.parallel import parallel_imap

__all__ = ["BOUNDARY_PX", "Ceiling", "insert_section", "parse_train_sizes", "resolution_ceiling", "write_ceiling"]

#: Width of the Boundary IoU band at 512x512 (as ``train evaluate --boundary-px``'s default).
BOUNDARY_PX = 3


def parse_train_sizes(value: str) -> list[int]:
    """``"128,256,512"`` -> ``[128, 256, 512]``: sides the trainer takes (multiples of 32), sorted, unique.

    Raises:
        ValueError: not a comma-separated list of positive multiples of 32.

    Example:
        >>> parse_train_sizes("512,128")
        [128, 512]
    """
    try:
        sizes = sorted({int(v) for v in value.split(",") if v.strip()})
    except ValueError:
        raise ValueError(f"expected sides like 128,256,512, got {value!r}") from None
    if not sizes or any(s <= 0 or s % 32 for s in sizes):
        raise ValueError(f"every side must be a positive multiple of 32 (as train fit --size), got {value!r}")
    return sizes


@dataclass(frozen=True)
class _Job:
    annotations: list[dict[str, Any]]
    height: int
    width: int
    ignore: list[dict[str, Any]]
    class_map: ClassMap
    overlap: str
    sizes: tuple[int, ...]


def _image(job: _Job) -> npt.NDArray[np.int64]:
    """(sizes, classes, 6) counts: intersection, union, truth, prediction, band intersection, band union."""
    from datatools_train.errors import boundary_width, bounding_box, inner_band
    from datatools_train.resize import round_trip

    truth = rasterize_semantic(job.annotations, job.height, job.width, job.class_map, job.overlap, ignore=job.ignore)
    keep = truth != IGNORE_INDEX
    k = len(job.class_map)
    d = boundary_width(job.height, job.width, BOUNDARY_PX)
    out = np.zeros((len(job.sizes), k, 6), np.int64)
    for i, size in enumerate(job.sizes):
        back = round_trip(truth, size, multilabel=False)
        for v in range(1, k + 1):
            box = bounding_box((truth == v) | (back == v), d + 1)
            if box is None:
                continue
            g, b, kept = truth[box] == v, back[box] == v, keep[box]
            p = b & kept
            gb, pb = inner_band(g, d), inner_band(b, d) & kept
            out[i, v - 1] = (int((g & p).sum()), int((g | p).sum()), int(g.sum()), int(p.sum()),
                             int((gb & pb).sum()), int((gb | pb).sum()))
    return out


@dataclass(frozen=True)
class Ceiling:
    """The ceiling table: one row per size and class (``size, class, iou, dice, boundary_iou, truth_px``)."""

    table: Any
    sizes: tuple[int, ...]
    names: tuple[str, ...]


def resolution_ceiling(ds: Dataset, sizes: Sequence[int], *, overlap: str = "smaller-on-top",
                       workers: int | None = None, progress: bool = True) -> Ceiling:
    """Per class IoU / Dice / Boundary IoU of each ground-truth mask's round trip through side ``sizes``.

    Args:
        ds: the dataset (annotations only; no image is read).
        sizes: training sides.
        overlap: the rasteriser's overlap policy.
        workers: processes of the parallel map.
        progress: progress bar on a terminal.

    Example:
        >>> c = resolution_ceiling(Dataset.load("valid.json", "valid/"), [128, 256, 512, 640])
        >>> c.table.query("size == 640")["iou"].min()
        1.0
    """
    import pandas as pd

    try:
        import datatools_train.resize  # noqa: F401 - the trainer's resizes: one implementation
    except ImportError as exc:  # pragma: no cover - datatools_train ships with datatools
        raise DatatoolsError(f"--train-size needs the trainer's package datatools_train ({exc})") from None
    cm = ds.class_map()
    jobs = [_Job([{k: a[k] for k in ("id", "category_id", "segmentation", "iscrowd") if k in a}
                  for a in ds.annotations_of(img["id"])], int(img["height"]), int(img["width"]),
                 (img.get("datatools") or {}).get("ignore", []), cm, overlap, tuple(sizes)) for img in ds.images]
    total = np.zeros((len(sizes), len(cm), 6), np.int64)
    for counts in parallel_imap(_image, jobs, workers=workers, desc="eda: resolution ceiling", progress=progress):
        total += counts
    names = tuple(cm.display_names())
    rows = []
    for i, size in enumerate(sizes):
        for c, name in enumerate(names):
            inter, union, t, p, binter, bunion = (int(v) for v in total[i, c])
            if not t:
                continue  # a class no image holds has no ceiling
            rows.append({"size": size, "class": name, "iou": inter / union, "dice": 2 * inter / (t + p),
                         "boundary_iou": binter / bunion if bunion else math.nan, "truth_px": t})
    return Ceiling(pd.DataFrame(rows, columns=["size", "class", "iou", "dice", "boundary_iou", "truth_px"]),
                   tuple(sizes), names)


def _plot(ceiling: Ceiling) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric in zip(axes, ("iou", "boundary_iou"), strict=True):
        for name, part in ceiling.table.groupby("class", sort=False):
            ax.plot(part["size"], part[metric], marker="o", label=plot_label(str(name)))
        label = metric.replace("_", " ")
        ax.set(xlabel="training side (px)", ylabel=label, title=f"ceiling: {label}", xticks=list(ceiling.sizes))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _section(ceiling: Ceiling, png: bytes) -> str:
    from datatools.eda._html import esc, figure, table

    head = ["class", *[f"{s} px: IoU / Dice / Boundary IoU" for s in ceiling.sizes]]
    rows = []
    for name, part in ceiling.table.groupby("class", sort=False):
        by = part.set_index("size")
        rows.append([esc(name), *[f"{by.loc[s, 'iou']:.4f} / {by.loc[s, 'dice']:.4f} / {by.loc[s, 'boundary_iou']:.4f}"
                                  for s in ceiling.sizes]])
    lead = ("The best any model trained at each side can score: every ground-truth mask resized down as the trainer "
            "feeds it and back up as predict returns it, scored against the original.")
    return (f'<section id="ceiling"><h2>Resolution ceiling</h2><p class="lead">{lead}</p>{table(head, rows)}'
            f'{figure(png, "ceiling vs training side")}</section>')


def insert_section(html: str, section: str, anchor: str, title: str) -> str:
    """The report with ``section`` added at the end of its main part and a link in its section bar.

    Raises:
        DatatoolsError: the report lacks the ``</main>`` or ``</nav>`` its layout has.
    """
    if html.count("</main>") != 1 or "</div></nav>" not in html:
        raise DatatoolsError("report.html: no place for the resolution ceiling (its layout changed)")
    html = html.replace("</div></nav>", f'<a href="#{anchor}">{title}</a></div></nav>', 1)
    return html.replace("</main>", f"{section}</main>", 1)


def write_ceiling(out: str | Path, ceiling: Ceiling) -> None:
    """Add ``ceiling.parquet``, ``ceiling.png`` and the report's section to an eda folder (each file atomically)."""
    out = Path(out)
    png = _plot(ceiling)
    report = out / "report.html"
    html = insert_section(report.read_text(encoding="utf-8"), _section(ceiling, png), "ceiling", "Ceiling")
    buf = io.BytesIO()
    ceiling.table.to_parquet(buf, index=False)
    atomic_write_bytes(out / "ceiling.parquet", buf.getvalue())
    atomic_write_bytes(out / "ceiling.png", png)
    atomic_write_text(report, html)

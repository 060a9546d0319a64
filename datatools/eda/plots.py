"""The figures of the EDA report: matplotlib (Agg, no pyplot), each returned as PNG bytes.

Every figure is a module-level function of plain data (lists and arrays) registered in :data:`PLOTS`, so the
report can render them over a process pool with :func:`render_plot`.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.classes import plot_label

__all__ = ["PLOTS", "human", "render_plot"]

DPI = 100
_STYLE: dict[Any, Any] = {
    "font.size": 9, "axes.titlesize": 10, "axes.titleweight": "bold", "axes.labelsize": 9,
    "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True, "grid.alpha": 0.3,
    "grid.linewidth": 0.6, "axes.axisbelow": True, "legend.frameon": False, "legend.fontsize": 8,
    "xtick.labelsize": 8, "ytick.labelsize": 8, "savefig.facecolor": "white", "figure.facecolor": "white",
}
_RARE = "#c0392b"
_OUTLIER = "#d62728"
_NORMAL = "#4c72b0"

Fig = Any  # matplotlib.figure.Figure, imported lazily


def human(n: float) -> str:
    """A short count: 950, 12.3k, 4.1M.

    Example:
        >>> human(12345)
        '12.3k'
    """
    n = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{n:.0f}" if n == int(n) else f"{n:.2g}"


def _figure(width: float, height: float) -> Fig:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI)


def _margins(fig: Fig, left: float = 0.55, right: float = 0.2, bottom: float = 0.45, top: float = 0.35,
             wspace: float = 0.3, hspace: float = 0.45) -> None:
    """Margins in inches (fixed layout: several times faster than constrained layout)."""
    w, h = fig.get_size_inches()
    fig.subplots_adjust(left=left / w, right=1 - right / w, bottom=bottom / h, top=1 - top / h, wspace=wspace,
                        hspace=hspace)


def _label_inches(labels: Sequence[str], fontsize: float = 8) -> float:
    """Room for the longest tick label, in inches."""
    longest = min(max((len(str(t)) for t in labels), default=4), 40)
    return 0.25 + longest * fontsize * 0.55 / 72


def _png(fig: Fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, pil_kwargs={"compress_level": 1})
    return buf.getvalue()


def _rgb(colors: Sequence[Sequence[int]]) -> list[tuple[float, float, float]]:
    return [(c[0] / 255, c[1] / 255, c[2] / 255) for c in colors]


def _class_ticks(ax: Any, labels: Sequence[str], rare: Sequence[bool] | None = None) -> None:
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.grid(axis="y", visible=False)
    if rare is not None:
        for tick, is_rare in zip(ax.get_yticklabels(), rare, strict=True):
            if is_rare:
                tick.set_color(_RARE)
                tick.set_fontweight("bold")


def class_balance(labels: list[str], colors: list[list[int]], instances: list[int], image_share: list[float],
                  labelled_share: list[float], rare: list[bool], threshold: float) -> bytes:
    """Instances, images containing the class, and share of labelled pixels; rare classes in red."""
    k = len(labels)
    fig = _figure(10.5, 0.9 + 0.32 * k)
    _margins(fig, left=_label_inches(labels, 8), bottom=0.35, top=0.3, wspace=0.08)
    axes = fig.subplots(1, 3, sharey=True)
    rgb = _rgb(colors)
    panels: list[tuple[list[float], str, str]] = [
        ([float(v) for v in instances], "instances", "{:,.0f}"),
        ([100 * v for v in image_share], "% of images containing it", "{:.1f}%"),
        ([100 * v for v in labelled_share], "% of labelled pixels", "{:.1f}%"),
    ]
    for ax, (vals, title, fmt) in zip(axes, panels, strict=True):
        bars = ax.barh(range(k), vals, color=rgb, edgecolor=[_RARE if r else "none" for r in rare], linewidth=1.2)
        ax.bar_label(bars, [fmt.format(v) for v in vals], padding=2, fontsize=7)
        ax.set_title(title)
        ax.grid(axis="y", visible=False)
        ax.margins(x=0.18)
    axes[1].axvline(100 * threshold * max(image_share, default=0.0), color=_RARE, lw=0.8, ls="--")  # rarity.py
    _class_ticks(axes[0], labels, rare)
    return _png(fig)


def object_sizes(labels: list[str], colors: list[list[int]], sides: list[list[float]], rel_areas: list[list[float]],
                 buckets: list[list[float]]) -> bytes:
    """Per class: object side in pixels (sqrt of area, COCO small/medium/large marked), area relative to the
    image, and the share of each COCO size."""
    k = len(labels)
    fig = _figure(10.5, 1.2 + 0.34 * k)
    _margins(fig, left=_label_inches(labels, 8), bottom=0.35, top=0.6, wspace=0.08)
    ax1, ax2, ax3 = fig.subplots(1, 3, sharey=True, width_ratios=[1.2, 1.2, 0.8])
    rgb = _rgb(colors)
    for ax, data, title in ((ax1, sides, "object side, px (sqrt of area)"),
                            (ax2, [[100 * v for v in r] for r in rel_areas], "area, % of image")):
        data = [d if len(d) else [np.nan] for d in data]
        parts = ax.boxplot(data, orientation="horizontal", positions=range(k), widths=0.6, patch_artist=True,
                           showfliers=True, flierprops={"markersize": 2, "alpha": 0.4},
                           medianprops={"color": "black", "lw": 1})
        for patch, color in zip(parts["boxes"], rgb, strict=True):
            patch.set_facecolor((*color, 0.6))
        _log_x(ax)
        ax.set_title(title)
    for edge in (32, 96):  # COCO small | medium | large
        ax1.axvline(edge, color="gray", lw=0.8, ls="--")
    left = np.zeros(k)
    arr = np.nan_to_num(np.array(buckets, dtype=float).reshape(k, 3))
    for j, (name, shade) in enumerate((("small", "#f4a261"), ("medium", "#2a9d8f"), ("large", "#264653"))):
        ax3.barh(range(k), 100 * arr[:, j], left=100 * left, color=shade, label=name)
        left += arr[:, j]
    ax3.set_xlim(0, 100)
    ax3.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=3, handlelength=1, columnspacing=0.8)
    ax3.set_title("COCO size, %", pad=20)
    _class_ticks(ax1, labels)
    return _png(fig)


def _plain_log_ticks(axis: Any) -> None:
    """Plain tick labels on a log axis (mathtext labels and minor ticks cost more than the rest of a figure)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 3.0)))
    axis.set_major_formatter(FuncFormatter(lambda v, _: human(v) if v >= 1000 else f"{v:g}"))
    axis.set_minor_locator(NullLocator())


def _log_x(ax: Any) -> None:
    ax.set_xscale("log")
    _plain_log_ticks(ax.xaxis)


def hist(ax: Any, values: npt.ArrayLike, bins: Any, color: str, **kwargs: Any) -> None:
    """A filled histogram drawn as one step artist (``ax.hist`` makes a patch per bin: several times slower
    to draw, and most of a figure's cost with a few histograms)."""
    counts, edges = np.histogram(np.asarray(values, dtype=float), bins=bins)
    ax.stairs(counts, edges, fill=True, color=color, **kwargs)


def _int_hist(ax: Any, values: npt.NDArray[np.int64], color: str) -> None:
    top = int(values.max()) if len(values) else 0
    bins = np.arange(-0.5, top + 1.5) if top <= 60 else 40
    hist(ax, values, bins, color)


def objects_per_image(n_annotations: list[int], n_classes: list[int]) -> bytes:
    """Histograms of objects and of classes per image."""
    fig = _figure(10.5, 2.6)
    _margins(fig, left=0.6, wspace=0.18)
    ax1, ax2 = fig.subplots(1, 2)
    a, c = np.asarray(n_annotations), np.asarray(n_classes)
    _int_hist(ax1, a, _NORMAL)
    ax1.set_title(f"objects per image (median {np.median(a) if len(a) else 0:.0f}, max {a.max() if len(a) else 0})")
    _int_hist(ax2, c, "#55a868")
    ax2.set_title("classes per image")
    for ax in (ax1, ax2):
        ax.set_ylabel("images")
    return _png(fig)


def image_sizes(widths: list[int], heights: list[int]) -> bytes:
    """Width against height (marker area by count) and the aspect ratio histogram."""
    fig = _figure(10.5, 3.0)
    _margins(fig, left=0.65, bottom=0.55, wspace=0.2)
    ax1, ax2 = fig.subplots(1, 2)
    pairs, counts = np.unique(np.stack([widths, heights], axis=1), axis=0, return_counts=True)
    ax1.scatter(pairs[:, 0], pairs[:, 1], s=12 + 200 * counts / counts.max(), alpha=0.6, color=_NORMAL)
    ax1.set_xlabel("width")
    ax1.set_ylabel("height")
    ax1.set_title(f"{len(pairs)} distinct sizes")
    hist(ax2, np.asarray(widths) / np.maximum(np.asarray(heights), 1), 30, _NORMAL)
    ax2.set_title("aspect ratio (width / height)")
    return _png(fig)


def brightness_contrast(brightness: list[float], contrast: list[float], b_outlier: list[bool],
                        c_outlier: list[bool], marks: list[int]) -> bytes:
    """Brightness against contrast with outliers in red (numbered as in the outlier gallery), and both
    distributions."""
    fig = _figure(10.5, 3.2)
    _margins(fig, left=0.6, bottom=0.55, wspace=0.22)
    ax1, ax2, ax3 = fig.subplots(1, 3, width_ratios=[1.4, 1, 1])
    b, c = np.asarray(brightness, dtype=float), np.asarray(contrast, dtype=float)
    out = np.asarray(b_outlier, dtype=bool) | np.asarray(c_outlier, dtype=bool)
    ax1.scatter(b[~out], c[~out], s=8, alpha=0.5, color=_NORMAL, label="images")
    ax1.scatter(b[out], c[out], s=22, color=_OUTLIER, label="outliers")
    for number, index in enumerate(marks, start=1):
        ax1.annotate(str(number), (b[index], c[index]), fontsize=7, color=_OUTLIER, xytext=(3, 3),
                     textcoords="offset points")
    ax1.set_xlabel("brightness (mean luma, 0-255)")
    ax1.set_ylabel("contrast (std of luma)")
    ax1.legend(loc="upper right")  # "best" searches every point: slow for many images
    for ax, vals, flags, title in ((ax2, b, b_outlier, "brightness"), (ax3, c, c_outlier, "contrast")):
        ok = ~np.isnan(vals)
        hist(ax, vals[ok], 30, _NORMAL)
        for v in vals[np.asarray(flags, dtype=bool)]:
            ax.axvline(v, color=_OUTLIER, lw=0.8)
        ax.set_title(title)
    return _png(fig)


def channel_means(means: list[list[float]], mean: list[float], std: list[float]) -> bytes:
    """Distribution of each image's mean R, G and B, with the dataset mean marked."""
    fig = _figure(10.5, 2.5)
    _margins(fig, left=0.65, bottom=0.55)
    ax = fig.subplots()
    arr = np.asarray(means, dtype=float).reshape(-1, 3)
    arr = arr[~np.isnan(arr).any(axis=1)]
    for c, (name, color) in enumerate((("R", "#d62728"), ("G", "#2ca02c"), ("B", "#1f77b4"))):
        ax.hist(arr[:, c], bins=40, histtype="step", lw=1.5, color=color,
                label=f"{name}: mean {mean[c]:.3f}, std {std[c]:.3f}")
        ax.axvline(255 * mean[c], color=color, lw=0.8, ls="--")
    ax.set_xlabel("per-image channel mean (0-255)")
    ax.set_ylabel("images")
    ax.legend(loc="upper left")
    return _png(fig)


def _matrix(ax: Any, values: npt.NDArray[np.float64], text: list[list[str]], labels: Sequence[str],
            cmap: str, vmin: float | None = None, vmax: float | None = None, norm: Any = None) -> Any:
    im = ax.imshow(values, cmap=cmap, vmin=None if norm else vmin, vmax=None if norm else vmax, norm=norm,
                   aspect="auto")
    k = len(labels)
    ax.set_xticks(range(k), labels, rotation=35, ha="right")
    ax.set_yticks(range(values.shape[0]), labels[: values.shape[0]] if values.shape[0] == k else [])
    ax.grid(False)
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if text[i][j]:
                ax.text(j, i, text[i][j], ha="center", va="center", fontsize=7,
                        color=_ink(im, float(values[i, j])))
    return im


def _ink(im: Any, value: float) -> str:
    """Black or white text, whichever reads better on the cell's colour."""
    if not np.isfinite(value):
        return "black"
    # a norm whose vmin equals its vmax (one distinct value) answers with an array, not a scalar
    r, g, b = np.asarray(im.cmap(im.norm(value)), dtype=float).reshape(-1, 4)[0, :3]
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def cooccurrence(labels: list[str], counts: list[list[int]]) -> bytes:
    """Image-level co-occurrence: cell (row, col) = share of the row class's images that also contain the column
    class; the number is the count of images with both (diagonal: images with the class)."""
    co = np.asarray(counts, dtype=float)
    k = len(labels)
    diag = np.maximum(np.diag(co), 1)
    cond = co / diag[:, None]
    room = _label_inches(labels, 8)
    fig = _figure(room + 1.6 + 0.62 * k, room * 0.7 + 0.7 + 0.5 * k)
    _margins(fig, left=room, right=1.3, bottom=room * 0.7, top=0.35)
    ax = fig.subplots()
    im = _matrix(ax, cond, [[human(co[i, j]) for j in range(k)] for i in range(k)], labels, "viridis", 0, 1)
    fig.colorbar(im, ax=ax, label="P(column | row)", shrink=0.8)
    ax.set_title("images containing both classes")
    return _png(fig)


def pixel_overlap(labels: list[str], pixels: list[list[int]]) -> bytes:
    """Pixels claimed by two classes (diagonal: by two annotations of the same class), log colour scale."""
    from matplotlib.colors import LogNorm

    m = np.asarray(pixels, dtype=float)
    m = np.triu(m) + np.triu(m, 1).T
    k = len(labels)
    shown = np.where(m > 0, m, np.nan)
    room = _label_inches(labels, 8)
    fig = _figure(room + 1.6 + 0.62 * k, room * 0.7 + 0.7 + 0.5 * k)
    _margins(fig, left=room, right=1.3, bottom=room * 0.7, top=0.35)
    ax = fig.subplots()
    norm = LogNorm(vmin=max(1.0, np.nanmin(shown)), vmax=max(2.0, np.nanmax(shown))) if np.isfinite(
        shown).any() else None
    im = _matrix(ax, np.log10(np.where(m > 0, m, np.nan)) if norm is None else shown,
                 [[human(m[i, j]) if m[i, j] else "" for j in range(k)] for i in range(k)], labels, "magma",
                 norm=norm)
    bar = fig.colorbar(im, ax=ax, label="pixels", shrink=0.8)
    _plain_log_ticks(bar.ax.yaxis)
    ax.set_title("pixels claimed by both")
    return _png(fig)


def spatial_heatmaps(labels: list[str], heat: list[npt.NDArray[np.float64]], images_with: list[int]) -> bytes:
    """Per class: share of the class's images in which an annotation of it covers each cell."""
    k = len(labels)
    cols = min(k, 5)
    rows = -(-k // cols)
    fig = _figure(2.3 * cols + 0.9, 2.5 * rows + 0.1)
    _margins(fig, left=0.1, right=0.9, bottom=0.1, top=0.45, wspace=0.08, hspace=0.35)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    im = None
    for ax, label, plane, n in zip(axes, labels, heat, images_with, strict=False):
        share = np.asarray(plane, dtype=float) / max(n, 1)
        im = ax.imshow(share, cmap="magma", vmin=0, vmax=max(float(share.max()), 1e-6), interpolation="bilinear")
        ax.set_title(f"{label}\npeak {100 * share.max():.0f}% of {n} images", fontsize=8)
        ax.set_xticks([])
        ax.set_yticks([])
        ax.grid(False)
    for ax in axes[k:]:
        ax.set_visible(False)
    if im is not None:
        cax = fig.add_axes((1 - 0.75 / fig.get_size_inches()[0], 0.2, 0.12 / fig.get_size_inches()[0], 0.6))
        fig.colorbar(im, cax=cax, ticks=[])
        cax.set_ylabel("low → high (own scale per class)", fontsize=7)
    return _png(fig)


PLOTS: dict[str, Callable[..., bytes]] = {
    "class_balance": class_balance,
    "object_sizes": object_sizes,
    "objects_per_image": objects_per_image,
    "image_sizes": image_sizes,
    "brightness_contrast": brightness_contrast,
    "channel_means": channel_means,
    "cooccurrence": cooccurrence,
    "pixel_overlap": pixel_overlap,
    "spatial_heatmaps": spatial_heatmaps,
}


def render_plot(job: tuple[str, dict[str, Any]]) -> bytes:
    """Render one registered figure, ``(name, keyword arguments)``, to PNG bytes.

    Example:
        >>> png = render_plot(("objects_per_image", {"n_annotations": [1, 2, 2], "n_classes": [1, 1, 2]}))
        >>> png[:4] == b"\\x89PNG"
        True
    """
    import matplotlib

    from datatools.eda.optional_plots import EXTRA_PLOTS

    name, kwargs = job
    fn = PLOTS.get(name) or EXTRA_PLOTS[name]
    for key in ("labels", "names"):  # class names and meta columns: `$`, a leading `_`, long names are safe
        if key in kwargs:
            kwargs = {**kwargs, key: [plot_label(str(label)) for label in kwargs[key]]}
    with matplotlib.rc_context(_STYLE):
        return fn(**kwargs)

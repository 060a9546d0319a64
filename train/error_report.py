"""``report.html`` of ``datatools train evaluate``: scores, the error breakdown, object recall, per-fold scores and
galleries of the worst images per class, built from the eda report's HTML helpers and style sheet."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.imageio import encode_image, read_image
from datatools.eda._html import esc, pct, section, table, thumb
from datatools.eda.report import REPORT_CSS

from .error_tables import GalleryEntry

__all__ = ["KIND_COLORS", "error_overlay", "render_error_report"]

#: RGB colour of each error kind in the gallery overlays (correct pixels are tinted lightly).
KIND_COLORS = {1: (60, 170, 90), 2: (255, 150, 0), 3: (40, 110, 255), 4: (220, 30, 200)}
_KIND_NAMES = {1: "correct", 2: "under-prediction (missed)", 3: "over-prediction (background taken)",
               4: "confusion (another class)"}


def error_overlay(image: npt.NDArray[np.uint8], kinds: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    """The image at the size of ``kinds`` with each error kind painted in :data:`KIND_COLORS`.

    Example:
        >>> error_overlay(np.zeros((64, 64, 3), np.uint8), np.full((32, 32), 2, np.uint8))[0, 0].tolist()
        [229, 135, 0]
    """
    h, w = kinds.shape
    small: Any = cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)
    out = small.copy()
    for value, color in KIND_COLORS.items():
        where = kinds == value
        alpha = 0.35 if value == 1 else 0.9
        out[where] = ((1 - alpha) * small[where] + alpha * np.asarray(color)).astype(np.uint8)
    return np.asarray(out, dtype=np.uint8)


def _f(value: Any, digits: int = 4) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _legend() -> str:
    chips = "".join(f'<span class="chip" style="background:rgb{KIND_COLORS[k]}"></span>{esc(n)} &nbsp; '
                    for k, n in _KIND_NAMES.items())
    return f'<p class="lead">{chips}</p>'


def _breakdown(summary: Any, multilabel: bool, boundary_px: int) -> str:
    head = ["class", "IoU", "Dice", "Boundary IoU", "error px", "under", "over"]
    head += [] if multilabel else ["confusion", "most confused as"]
    head += ["on the boundary"]
    rows = []
    for r in summary.to_dict("records"):
        row = [esc(r["class"]), _f(r.get("iou")), _f(r.get("dice")), _f(r["boundary_iou"]), f"{r['error_px']:,}",
               pct(r["under"]), pct(r["over"])]
        if not multilabel:
            top = r["confused_most_as"]
            most = f"{esc(top)} ({r['confused_most_px']:,} px)" if isinstance(top, str) else "–"
            row += [pct(r["confusion"]), most]
        rows.append([*row, pct(r["boundary"])])
    lead = (f"Wrong pixels of each class: {'false negatives and false positives per plane' if multilabel else ''}"
            f"{'' if multilabel else 'truth predicted as background (under), background predicted as the class '}"
            f"{'' if multilabel else '(over), truth predicted as another class (confusion)'}; the boundary share is "
            f"the part within {boundary_px} px (at 512×512, scaled by the image diagonal) of the true class's edge.")
    return section("errors", "Error breakdown", table(head, rows), lead)


def _recall(summary: Any) -> str:
    head = ["class", "objects", "small", "medium", "large", "smallest 10%"]
    rows = []
    for r in summary.to_dict("records"):
        cells = [esc(r["class"]), str(r["objects"])]
        for size in ("small", "medium", "large"):
            n = r[f"objects_{size}"]
            cells.append(f"{pct(r[f'recall_{size}'])} <span class='muted'>of {n}</span>" if n else "–")
        area = r["smallest_decile_area"]
        cells.append(f"{pct(r['recall_smallest_decile'])} <span class='muted'>≤ {area:,.0f} px</span>"
                     if r["objects"] else "–")
        rows.append(cells)
    lead = ("Share of ground-truth objects of which at least half the visible pixels are predicted as their class, "
            "by COCO size (small < 32², medium < 96² pixels) and for each class's smallest tenth.")
    return section("objects", "Objects found", table(head, rows), lead)


def _folds(folds: Any) -> str:
    if folds is None or folds.empty:
        return ""
    head = [esc(c) for c in folds.columns]
    rows = [[esc(v) if isinstance(v, str) else _f(v) if isinstance(v, float) else esc(v) for v in r]
            for r in folds.itertuples(index=False)]
    return section("folds", "Out of fold", table(head, rows), "Each fold scored by the checkpoint that did not "
                   "train on it; the pooled row scores all images together (the honest cross-validation figure).")


def _gallery(gallery: Mapping[str, Sequence[GalleryEntry]]) -> str:
    if not gallery:
        return ""
    parts = [_legend()]
    for name, entries in gallery.items():
        tiles = []
        for e in entries:
            jpeg = encode_image(error_overlay(read_image(e.path), e.kinds), ".jpg", 85)
            tiles.append(thumb(jpeg, e.file_name, f"{e.error_px:,} wrong px<br><span class='fn'>"
                               f"{esc(e.file_name)}</span>"))
        parts.append(f"<h3>{esc(name)}</h3><div class='grid'>{''.join(tiles)}</div>")
    return section("gallery", "Worst images per class", "".join(parts), "The images with the most wrong pixels of "
                   "each class; only that class's pixels are painted.")


def render_error_report(scores_line: str, summary: Any, gallery: Mapping[str, Sequence[GalleryEntry]], *,
                        multilabel: bool, boundary_px: int, title: str, folds: Any = None) -> str:
    """The whole page as one self-contained HTML string (images embedded, no script)."""
    from datatools import __version__

    parts = [("errors", "Errors", _breakdown(summary, multilabel, boundary_px)), ("objects", "Objects",
             _recall(summary)), ("folds", "Folds", _folds(folds)), ("gallery", "Gallery", _gallery(gallery))]
    nav = "".join(f'<a href="#{a}">{n}</a>' for a, n, body in parts if body)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<link rel="icon" href="data:,"><title>{esc(title)}</title><style>{REPORT_CSS}</style></head><body>'
            f'<header class="top"><div class="wrap"><h1>Evaluation</h1><div class="src">{esc(title)}</div></div>'
            f'</header><nav><div class="wrap">{nav}</div></nav><main class="wrap" id="top">'
            f'<section id="scores"><p class="lead">{esc(scores_line)}</p></section>'
            f'{"".join(body for _, _, body in parts)}</main><footer>datatools {esc(__version__)} · train evaluate · '
            f"{stamp} · tables: errors.parquet, objects.parquet, per_class.csv, per_image.parquet</footer>"
            "</body></html>\n")

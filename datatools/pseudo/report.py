"""The ``pseudo-label`` report: what share of each class became labels, how confident the images were, and a few
overlays with the ignore region shown.

Self-contained like the eda and clean reports (their stylesheet, HTML helpers and thumbnail renderer; thumbnails
embedded as JPEG): it opens offline. Every number in it is read from ``summary.json``'s content, and it carries no
time stamp, so the same inputs give the same bytes.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from datatools.core.classes import ClassMap
from datatools.core.dataset import IMAGES_DIR
from datatools.core.errors import DatatoolsError
from datatools.core.imageio import read_image
from datatools.core.masks import rasterize_semantic
from datatools.core.parallel import parallel_imap, parallel_map
from datatools.core.paths import resolve_under
from datatools.eda._html import bar, card, chip, esc, num, pct, section, table, thumb
from datatools.eda.colors import class_colors, hex_color
from datatools.eda.gallery import render_thumbnail
from datatools.eda.report import REPORT_CSS

__all__ = ["GALLERY", "labelled_pixel_shares", "pick_overlays", "render_overlays", "render_pseudo_report"]

#: Overlays in the report's gallery.
GALLERY = 8
#: Skipped images listed in the report (all of them are in summary.json).
MAX_SKIPPED = 50

_Job = tuple[str, str, int, int, list[dict[str, Any]], list[dict[str, Any]], ClassMap]


def _class_pixels(job: tuple[str, int, int, list[dict[str, Any]], list[dict[str, Any]], ClassMap]
                  ) -> np.ndarray:
    _, height, width, anns, ignore, cm = job
    mask = rasterize_semantic(anns, height, width, cm, ignore=ignore)
    return np.bincount(mask.ravel(), minlength=256)


def labelled_pixel_shares(coco: dict[str, Any], cm: ClassMap, *, workers: int | None = None,
                          progress: bool = False) -> list[float]:
    """Each class value's share of the pixels of a labelled dataset, rasterised image by image.

    Args:
        coco: the labelled dataset's COCO dict.
        cm: its class map.
        workers: processes.
        progress: progress bar.

    Returns:
        Shares of values 0 (background) .. K over all pixels (ignore pixels count in the total, not in any class).

    Example:
        >>> labelled_pixel_shares(ds.coco, ds.class_map())[0]  # background
        0.71
    """
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    jobs = [(str(img["file_name"]), int(img["height"]), int(img["width"]), by_image.get(img["id"], []),
             list((img.get("datatools") or {}).get("ignore", [])), cm) for img in coco["images"]]
    total = np.zeros(256, dtype=np.int64)
    for counts in parallel_imap(_class_pixels, jobs, workers=workers, desc="pseudo-label: labelled shares",
                                progress=progress):
        total += counts
    pixels = max(int(total.sum()), 1)
    return [float(total[v]) / pixels for v in range(len(cm) + 1)]


def pick_overlays(shares: Sequence[float], n: int = GALLERY) -> list[int]:
    """Positions of ``n`` images spread evenly over the ranking by confident share (least confident first).

    Example:
        >>> pick_overlays([0.9, 0.1, 0.5], 2)
        [1, 0]
    """
    if not shares or n <= 0:
        return []
    ranked = sorted(range(len(shares)), key=lambda i: (shares[i], i))
    if len(ranked) <= n:
        return ranked
    step = (len(ranked) - 1) / (n - 1) if n > 1 else 0.0
    return [ranked[round(k * step)] for k in range(n)]


def _overlay(job: _Job) -> bytes | None:
    root, file_name, height, width, anns, ignore, cm = job
    try:
        image = read_image(resolve_under(root, file_name))
    except DatatoolsError:
        return None
    if image.shape[:2] != (height, width):
        return None
    mask = rasterize_semantic(anns, height, width, cm, ignore=ignore)
    return render_thumbnail(image, mask, class_colors(len(cm)), 320)


def render_overlays(folder: Path, coco: dict[str, Any], positions: Sequence[int], *, workers: int | None = None
                    ) -> list[bytes | None]:
    """JPEG overlays of ``coco["images"][positions]`` read from the dataset ``folder``: labels in their class
    colour, the ignore region white."""
    cm = ClassMap.from_categories(coco["categories"])
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for ann in coco["annotations"]:
        by_image.setdefault(ann["image_id"], []).append(ann)
    jobs: list[_Job] = []
    for p in positions:
        img = coco["images"][p]
        jobs.append((str(folder / IMAGES_DIR), str(img["file_name"]), int(img["height"]), int(img["width"]),
                     by_image.get(img["id"], []), list(img["datatools"].get("ignore", [])), cm))
    return parallel_map(_overlay, jobs, workers=workers, desc="pseudo-label: overlays", progress=False) \
        if jobs else []


def _classes_section(summary: dict[str, Any], colors: list[str]) -> str:
    classes = summary["classes"]
    merged = any(c.get("labelled_set_share") is not None for c in classes.values())
    head = ["class", "predicted pixels", "confident share", "pseudo-labelled pixels", "share of pixels"]
    head += ["labelled set share"] if merged else []
    rows = []
    for (label, c), color in zip(classes.items(), colors, strict=True):
        row = [f"{chip(color)}{esc(label)}", num(c["predicted_pixels"]), bar(c["confident_share"], color),
               num(c["labelled_pixels"]), pct(c["pixel_share"], 3)]
        rows.append(row + ([pct(c.get("labelled_set_share"), 3)] if merged else []))
    lead = ("Over the written images. Predicted pixels: the arg-max class (multilabel: p ≥ 0.5). Confident share: "
            "the part of them kept as labels. Share of pixels: the pseudo labels' share of all their pixels")
    lead += (", against the class's share in the --merge-with labelled set." if merged else
             "; give --merge-with to compare with a labelled set.")
    return section("classes", "Classes", table(head, rows), lead)


def _histogram_section(summary: dict[str, Any]) -> str:
    dist = summary["confident_share"]
    if not dist:
        return ""
    edges, counts = dist["histogram"]["edges"], dist["histogram"]["counts"]
    images = max(sum(counts), 1)
    rows = [[f"{pct(lo, 0)} – {pct(hi, 0)}", str(n), bar(n / images)] for lo, hi, n in
            zip(edges[:-1], edges[1:], counts, strict=True)]
    lead = (f"Share of each image's pixels that are not ignored (skipped images too): mean {pct(dist['mean'])}, "
            f"median {pct(dist['median'])}, least {pct(dist['min'])}.")
    body = table(["confident share", "images", "share of images"], rows)
    return section("confidence", "Confident share per image", body, lead)


def _skipped_section(summary: dict[str, Any]) -> str:
    skipped = summary["skipped"]
    if not skipped:
        return ""
    items = "".join(f"<li>{esc(name)}</li>" for name in skipped[:MAX_SKIPPED])
    more = f'<p class="note">{len(skipped) - MAX_SKIPPED} more in summary.json.</p>' \
        if len(skipped) > MAX_SKIPPED else ""
    n = len(skipped)
    lead = (f"{n} image{'s' if n != 1 else ''} under --min-confident {summary['rule']['min_confident']} "
            f"{'were' if n != 1 else 'was'} not written.")
    return section("skipped", "Skipped images", f"<ul>{items}</ul>{more}", lead)


def render_pseudo_report(summary: dict[str, Any], overlays: Sequence[tuple[str, float, bytes | None]]) -> str:
    """The report as one HTML string.

    Args:
        summary: the content of ``summary.json``.
        overlays: ``(file name, confident share, JPEG or None)`` of the gallery images.

    Example:
        >>> html = render_pseudo_report(result.summary, [])
        >>> html.startswith("<!doctype html>")
        True
    """
    from datatools import __version__

    palette = class_colors(len(summary["classes"]))
    first = 0 if summary["source"].get("mode") == "multiclass" else 1  # multiclass channels start at background
    colors = [hex_color(palette[v]) if v else "#888" for v in range(first, first + len(summary["classes"]))]
    dist = summary["confident_share"]
    rule = summary["rule"]
    cards = [card("images", str(summary["images"])), card("written", str(summary["written"])),
             card("skipped", str(len(summary["skipped"])), "under --min-confident"),
             card("mean confident share", pct(dist.get("mean")), "pixels not ignored"),
             card("threshold", f"{rule['threshold']:g}", ", ".join(f"{esc(n)}={t:g}" for n, t in
                                                                  rule["class_thresholds"].items()))]
    shown = [thumb(jpeg, name, f"confident {pct(share)}<br><span class=\"fn\">{esc(name)}</span>")
             for name, share, jpeg in overlays if jpeg is not None]
    gallery = section("gallery", "Gallery", f'<div class="grid">{"".join(shown)}</div>',
                      "Images spread from the least to the most confident: pseudo labels in their class colour, "
                      "the ignore region white.") if shown else ""
    parts = [_classes_section(summary, colors), _histogram_section(summary), _skipped_section(summary), gallery]
    kind = esc(summary["source"].get("kind", ""))
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>pseudo-label</title><style>{REPORT_CSS}</style></head><body>'
        '<header class="top"><div class="wrap"><h1>Pseudo labels</h1>'
        f'<div class="src">predictions from <b>{kind}</b> · {summary["written"]} images written'
        f'{" after the labelled set " + esc(summary["merged_with"]) if summary.get("merged_with") else ""}'
        '</div></div></header><nav><div class="wrap"><a href="#top">Overview</a><a href="#classes">Classes</a>'
        '<a href="#confidence">Confidence</a><a href="#gallery">Gallery</a></div></nav>'
        f'<main class="wrap" id="top"><div class="cards">{"".join(cards)}</div>{"".join(parts)}</main>'
        f"<footer>datatools {esc(__version__)} · datatools pseudo-label · summary.json, annotations.json</footer>"
        "</body></html>\n"
    )

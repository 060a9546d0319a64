"""The ``clean`` report: one section per check, a table and a gallery of overlays per kind, worst first.

Self-contained like the eda report (its stylesheet and HTML helpers, thumbnails from its gallery code embedded
as JPEG): it opens offline. An overlay shows what a finding is about: the flagged annotations filled in their
class colour, the whole mask for image-level findings, a white box for a region the labels miss.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import cv2

from datatools.clean.findings import CHECKS, KINDS, Finding, Level
from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.errors import DatatoolsError
from datatools.core.imageio import read_image
from datatools.core.masks import rasterize_semantic
from datatools.core.parallel import parallel_map
from datatools.core.paths import resolve_under
from datatools.eda._html import card, esc, section, table, thumb
from datatools.eda.colors import class_colors
from datatools.eda.gallery import render_thumbnail
from datatools.eda.report import REPORT_CSS

__all__ = ["render_clean_report", "render_thumbnails"]

#: Rows of each kind's table in the report.
MAX_ROWS = 50

_Task = tuple[str, str, int, int, list[dict[str, Any]], tuple[int, int, int, int] | None, ClassMap]


def _thumbnail(task: _Task) -> bytes | None:
    """One overlay (a parallel_map worker); ``None`` when the image cannot be read."""
    root, file_name, height, width, anns, box, cm = task
    try:
        image = read_image(resolve_under(root, file_name))
        mask = rasterize_semantic(anns, height, width, cm)
    except (DatatoolsError, ValueError):
        return None
    if image.shape[:2] != (height, width):
        return None
    if box is not None:
        x, y, w, h = box
        cv2.rectangle(mask, (x, y), (x + w - 1, y + h - 1), IGNORE_INDEX, max(2, width // 160))
    return render_thumbnail(image, mask, class_colors(len(cm)), 320)


def render_thumbnails(coco: dict[str, Any], found: Sequence[Finding], usable: dict[int, list[dict[str, Any]]],
                      cm: ClassMap, root: str, per_kind: int, workers: int | None) -> dict[int, bytes]:
    """Overlays of the worst ``per_kind`` findings of each kind: position in ``found`` -> JPEG bytes.

    Args:
        coco: the COCO dict.
        found: the findings, in report order.
        usable: image position -> its annotations that can be rasterised.
        cm: category id -> mask value.
        root: image root.
        per_kind: overlays per kind.
        workers: processes.
    """
    picked: list[int] = []
    shown: dict[str, int] = {}
    for n, f in enumerate(found):
        if f.image_index in usable and shown.get(f.kind, 0) < per_kind:
            shown[f.kind] = shown.get(f.kind, 0) + 1
            picked.append(n)
    tasks: list[_Task] = []
    for n in picked:
        f = found[n]
        img = coco["images"][f.image_index]
        anns = usable[f.image_index]
        if KINDS[f.kind].level is Level.ANNOTATION:
            anns = [a for a in anns if a["id"] in f.annotation_ids]
        box = f.extra.get("box_xywh")
        tasks.append((root, str(img["file_name"]), int(img["height"]), int(img["width"]), anns, box, cm))
    jpegs = parallel_map(_thumbnail, tasks, workers=workers, desc="clean: overlays", progress=False) if tasks else []
    return {n: j for n, j in zip(picked, jpegs, strict=True) if j is not None}


def _kind_block(kind: str, rows: list[tuple[int, Finding]], thumbs: dict[int, bytes]) -> str:
    info = KINDS[kind]
    gallery = [thumb(thumbs[n], f.file_name, f"<b>{esc(f.severity.value)}</b> · score {f.score:.3g}<br>"
                     f"{esc(f.reason)}<br><span class=\"fn\">{esc(f.file_name)}</span>")
               for n, f in rows if n in thumbs]
    head = ["#", "severity", "score", "image id", "annotations", "reason"]
    body = [[str(r + 1), f'<span class="tag {f.severity.value}">{f.severity.value}</span>', f"{f.score:.3g}",
             esc(f.image_id), esc(", ".join(str(a) for a in f.annotation_ids)), esc(f.reason)]
            for r, (_, f) in enumerate(rows[:MAX_ROWS])]
    more = f'<p class="note">{len(rows) - MAX_ROWS} more in findings.parquet.</p>' if len(rows) > MAX_ROWS else ""
    grid = f'<div class="grid">{"".join(gallery)}</div>' if gallery else ""
    return (f'<h3>{esc(kind)} <span class="muted">{len(rows)} · {esc(info.meaning)}</span></h3>{grid}'
            f"{table(head, body)}{more}")


def render_clean_report(summary: dict[str, Any], found: Sequence[Finding], thumbs: dict[int, bytes],
                        per_kind: int = 12) -> str:
    """The report as one HTML string.

    Example:
        >>> html = render_clean_report(result.summary, result.findings, {})
        >>> html.startswith("<!doctype html>")
        True
    """
    from datatools import __version__

    by_kind: dict[str, list[tuple[int, Finding]]] = {}
    for n, f in enumerate(found):
        by_kind.setdefault(f.kind, []).append((n, f))
    parts = []
    for check in CHECKS:
        if check.value not in summary["checks"] and check.value != "annotations":
            continue
        blocks = [_kind_block(kind, by_kind[kind], thumbs) for kind, info in KINDS.items()
                  if info.check is check and kind in by_kind]
        body = "".join(blocks) or '<p class="good">Nothing found.</p>'
        parts.append((check.value, check.value.capitalize(), section(check.value, check.value.capitalize(), body)))
    nav = "".join(f'<a href="#{anchor}">{name}</a>' for anchor, name, _ in parts)
    sev = summary["by_severity"]
    cards = [card("images", str(summary["images"])), card("annotations", str(summary["annotations"])),
             card("findings", str(summary["findings"]), f"in {summary['images_with_findings']} images"),
             card("severity", f"{sev['error']} / {sev['warning']} / {sev['info']}", "errors / warnings / info")]
    applied = summary.get("applied")
    if applied:
        cards.append(card("cleaned dataset", f"{applied['images']} images",
                          f"{applied['images_dropped']} images and {applied['annotations_dropped']} annotations "
                          f"dropped, {applied['annotations_ignored']} turned into ignore regions", wide=True))
    src = summary["source"]
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>clean · {esc(src["annotations"])}</title><style>{REPORT_CSS}'
        '</style></head><body><header class="top"><div class="wrap"><h1>Dataset cleaning findings</h1>'
        f'<div class="src">annotations <b>{esc(src["annotations"])}</b> · images <b>{esc(src["images"])}</b> · '
        f'checks <b>{esc(", ".join(summary["checks"]))}</b></div></div></header>'
        f'<nav><div class="wrap"><a href="#top">Overview</a>{nav}</div></nav>'
        f'<main class="wrap" id="top"><div class="cards">{"".join(cards)}</div>'
        f'{"".join(body for _, _, body in parts)}</main>'
        f"<footer>datatools {esc(__version__)} · datatools clean · {stamp} · findings.parquet, summary.json"
        f"{' · removed.json, dataset/' if applied else ''} · up to {per_kind} overlays per kind</footer>"
        "</body></html>\n"
    )

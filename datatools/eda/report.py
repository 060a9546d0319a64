"""The self-contained HTML report: every figure and thumbnail embedded, no script, no external URL.

It opens offline in any browser and is laid out for a laptop screen (content at most 1180 px wide, a sticky
section bar, tables that scroll sideways inside their box when a dataset has many classes).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from datatools.core.parallel import parallel_map
from datatools.eda._html import ReportInput, card, esc, num, pct
from datatools.eda.compare_report import compare_jobs, compare_section
from datatools.eda.optional_sections import extra_jobs, folds_section, gallery_section, meta_section, plot_name
from datatools.eda.plots import human, render_plot
from datatools.eda.sections import (
    class_section,
    core_jobs,
    image_section,
    overlap_section,
    problems_section,
    size_section,
    spatial_section,
)

__all__ = ["REPORT_CSS", "ReportInput", "figure_jobs", "render_figures", "render_report"]

REPORT_CSS = """
:root{--fg:#1d2430;--muted:#5f6b7a;--line:#e3e7ee;--bg:#f6f7fb;--card:#fff;--accent:#3b5bdb;--bad:#c0392b;
--warn:#b7791f;--ok:#2f855a}
*{box-sizing:border-box}
body{margin:0;font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,"Noto Sans","Helvetica Neue",Arial,sans-serif;
color:var(--fg);background:var(--bg)}
.wrap{max-width:1180px;margin:0 auto;padding:0 24px}
header.top{background:#1d2430;color:#fff;padding:18px 0 14px}
header.top h1{margin:0;font-size:22px;font-weight:650;letter-spacing:.2px}
header.top .src{color:#b8c2d3;font-size:13px;margin-top:2px;word-break:break-all}
nav{position:sticky;top:0;z-index:5;background:#fff;border-bottom:1px solid var(--line);
box-shadow:0 1px 3px rgba(0,0,0,.04)}
nav .wrap{display:flex;gap:4px;flex-wrap:wrap;padding-top:6px;padding-bottom:6px}
nav a{color:var(--fg);text-decoration:none;font-size:13px;padding:4px 10px;border-radius:14px}
nav a:hover{background:#eef1f8}
section{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:18px 22px 20px;margin:18px 0;
scroll-margin-top:52px}
h2{margin:0 0 6px;font-size:19px}
h3{margin:18px 0 8px;font-size:15px}
p.lead{margin:0 0 12px;color:var(--muted)}
.cards{display:grid;grid-template-columns:repeat(4,minmax(0,1fr));gap:12px;margin:18px 0}
.card.wide{grid-column:span 2}
@media (max-width:760px){.cards{grid-template-columns:repeat(2,minmax(0,1fr))}}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;padding:12px 14px}
.card .k{font-size:12px;text-transform:uppercase;letter-spacing:.5px;color:var(--muted)}
.card .v{font-size:22px;font-weight:650;margin-top:2px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.card .n{font-size:12.5px;color:var(--muted)}
figure{margin:12px 0}
.pair{display:grid;grid-template-columns:repeat(auto-fit,minmax(420px,1fr));gap:16px;align-items:start}
figure img{max-width:100%;height:auto;display:block;margin:0 auto}
figcaption{font-size:12.5px;color:var(--muted);text-align:center;margin-top:4px}
.tablewrap{overflow-x:auto;margin:10px 0}
table{border-collapse:collapse;width:100%;font-size:13.5px}
th{text-align:left;font-weight:600;color:var(--muted);border-bottom:2px solid var(--line);padding:6px 8px;
white-space:nowrap}
td{border-bottom:1px solid var(--line);padding:5px 8px;vertical-align:top}
td code{white-space:nowrap}
tbody tr:nth-child(even){background:#fafbfd}
td:nth-child(n+2){font-variant-numeric:tabular-nums}
.chip{display:inline-block;width:11px;height:11px;border-radius:3px;margin-right:7px;vertical-align:-1px;
border:1px solid rgba(0,0,0,.25)}
.bar{position:relative;min-width:120px;height:18px;background:#eef1f6;border-radius:4px;overflow:hidden}
.bar span{position:absolute;left:0;top:0;bottom:0;opacity:.75}
.bar em{position:relative;font-style:normal;font-size:12px;padding-left:6px;line-height:18px}
.tag{display:inline-block;font-size:11.5px;font-weight:600;padding:1px 7px;border-radius:9px;text-transform:uppercase;
letter-spacing:.3px}
.tag.bad,.tag.error{background:#fdecea;color:var(--bad)}
.tag.warning{background:#fff4dc;color:var(--warn)}
.tag.info{background:#e8f0fe;color:var(--accent)}
.good{color:var(--ok);font-weight:600}
.note{color:var(--muted);font-style:italic}
.muted{color:var(--muted);font-weight:400;font-size:13px;margin-left:6px}
.normalize{background:#f3f5fa;border:1px solid var(--line);border-radius:8px;padding:10px 14px;margin:12px 0}
pre{margin:6px 0 0;font:13px/1.5 ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:pre-wrap}
code{font:12.5px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;background:#f1f3f8;padding:1px 4px;
border-radius:4px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(210px,1fr));gap:12px}
figure.thumb{margin:0;background:#fafbfd;border:1px solid var(--line);border-radius:8px;overflow:hidden}
figure.thumb img{width:100%}
figure.thumb figcaption{text-align:left;padding:6px 8px;font-size:12px;color:var(--fg)}
.fn{color:var(--muted);word-break:break-all;font-size:11px}
footer{color:var(--muted);font-size:12px;text-align:center;padding:10px 0 30px}
"""


def figure_jobs(inp: ReportInput) -> list[tuple[str, tuple[str, dict[str, Any]]]]:
    """Every figure of the report: ``(name in the report, (registered plot, keyword arguments))`` for
    :func:`datatools.eda.plots.render_plot`."""
    return [(name, (plot_name(name), kwargs)) for name, kwargs in core_jobs(inp) + extra_jobs(inp) + compare_jobs(inp)]


def render_figures(inp: ReportInput, workers: int | None = None) -> dict[str, bytes]:
    """Render every figure of the report over the parallel map; name -> PNG bytes.

    Example:
        >>> figures = render_figures(report_input, workers=2)
    """
    jobs = figure_jobs(inp)
    pngs = parallel_map(render_plot, [job for _, job in jobs], workers=workers, desc="eda: figures",
                        progress=False, chunksize=1) if jobs else []
    return {name: png for (name, _), png in zip(jobs, pngs, strict=True)}


def _overview(inp: ReportInput) -> str:
    s = inp.summary
    opi = s["objects_per_image"]
    sizes = s["image_sizes"]
    size_note = (f"all {sizes[0]['width']}×{sizes[0]['height']}" if len(sizes) == 1
                 else f"{len(sizes)}{'+' if len(sizes) == 10 else ''} sizes")
    rare = s["rare"]["classes"]
    p = s["problems"]
    cards = [
        card("images", num(s["images"]), size_note),
        card("annotations", num(s["annotations"]), f"median {num(opi['median'])} per image, max {opi['max']}"),
        card("classes", num(s["classes"]), f"rare: {esc(', '.join(rare))}" if rare else "no rare class"),
        card("background", pct(s["background_share"]), "of all pixels"),
        card("overlap", human(s["overlap"]["pixels_claimed_by_two_classes"]),
             f"pixels claimed by two classes, in {s['overlap']['images_with_class_conflict']} images"),
        card("problems", f"{p['error']} / {p['warning']} / {p['info']}", "errors / warnings / info"),
    ]
    norm = s.get("normalize")
    if norm:
        cards.append(card("normalize (RGB, 0-1)", "mean " + ", ".join(f"{v:.3f}" for v in norm["mean"]),
                          "std " + ", ".join(f"{v:.3f}" for v in norm["std"]) + " · 0-255: mean "
                          + ", ".join(f"{255 * v:.1f}" for v in norm["mean"]), wide=True))
    return '<div class="cards">' + "".join(cards) + "</div>"


def render_report(inp: ReportInput, figures: dict[str, bytes], title: str | None = None) -> str:
    """The report as one HTML string.

    Args:
        inp: what the report shows.
        figures: from :func:`render_figures`.
        title: page title (default: the annotation file).

    Example:
        >>> html = render_report(report_input, render_figures(report_input))
        >>> html.startswith("<!doctype html>")
        True
    """
    from datatools import __version__

    src: dict[str, Any] = inp.summary["source"]
    title = title or f"EDA · {src['annotations']}"
    parts = [
        ("classes", "Classes", class_section(inp, figures)),
        ("sizes", "Object size", size_section(inp, figures)),
        ("images", "Images", image_section(inp, figures)),
        ("overlap", "Overlap", overlap_section(inp, figures)),
        ("spatial", "Spatial prior", spatial_section(inp, figures)),
        ("problems", "Problems", problems_section(inp)),
        ("gallery", "Gallery", gallery_section(inp)),
        ("folds", "Folds", folds_section(inp, figures)),
        ("meta", "Meta data", meta_section(inp, figures)),
        ("splits", "Splits", compare_section(inp, figures)),
    ]
    nav = "".join(f'<a href="#{anchor}">{name}</a>' for anchor, name, body in parts if body)
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" href="data:,"><title>{esc(title)}</title><style>{REPORT_CSS}</style></head><body>'
        f'<header class="top"><div class="wrap"><h1>Segmentation dataset EDA</h1>'
        f'<div class="src">annotations <b>{esc(src["annotations"])}</b> · images <b>{esc(src["images"])}</b> · '
        f'overlap policy <b>{esc(inp.summary["overlap_policy"])}</b></div></div></header>'
        f'<nav><div class="wrap"><a href="#top">Overview</a>{nav}</div></nav>'
        f'<main class="wrap" id="top">{_overview(inp)}{"".join(body for _, _, body in parts)}</main>'
        f"<footer>datatools {esc(__version__)} · datatools eda · {stamp} · tables: images.parquet, "
        "annotations.parquet, classes.parquet, summary.json</footer></body></html>\n"
    )

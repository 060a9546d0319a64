"""Small HTML helpers for the report, and the data every section reads."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.issues import Issue
from datatools.eda.accumulate import Totals
from datatools.eda.colors import hex_color
from datatools.eda.compare import CompareResult
from datatools.eda.folds import FoldBalance
from datatools.eda.meta import MetaAnalysis
from datatools.eda.tables import EdaTables


@dataclass
class ReportInput:
    """Everything the report shows (computed before any HTML is written)."""

    summary: dict[str, Any]
    tables: EdaTables
    totals: Totals
    labels: list[str]
    colors: npt.NDArray[np.uint8]
    issues: list[Issue]
    dropped: int = 0
    picks: dict[int, list[int]] = field(default_factory=dict)
    outliers: list[int] = field(default_factory=list)
    balance: FoldBalance | None = None
    meta: MetaAnalysis | None = None
    compare: CompareResult | None = None

    @property
    def read_pixels(self) -> bool:
        return bool(self.summary.get("images_read"))

    def class_rows(self) -> list[int]:
        """Rows of the classes table that are classes (not background or ignore)."""
        return [i for i, v in enumerate(self.tables.classes["value"]) if 0 < v < 255]

    def present_values(self) -> list[int]:
        """Class values with at least one instance."""
        cls = self.tables.classes
        return [int(cls["value"][i]) for i in self.class_rows() if cls["instances"][i] > 0]

    def color(self, value: int) -> str:
        return hex_color(self.colors[value])


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or value != value else f"{100 * value:.{digits}f}%"


def num(value: float | None) -> str:
    if value is None or value != value:
        return "–"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.3g}"


def chip(color: str) -> str:
    return f'<span class="chip" style="background:{color}"></span>'


def figure(png: bytes | None, alt: str, caption: str = "", wide: bool = True) -> str:
    if not png:
        return ""
    data = base64.b64encode(png).decode("ascii")
    cap = f"<figcaption>{caption}</figcaption>" if caption else ""
    return f'<figure class="{"wide" if wide else ""}"><img src="data:image/png;base64,{data}" alt="{esc(alt)}">' \
           f"{cap}</figure>"


def thumb(jpeg: bytes, alt: str, caption: str) -> str:
    data = base64.b64encode(jpeg).decode("ascii")
    return f'<figure class="thumb"><img src="data:image/jpeg;base64,{data}" alt="{esc(alt)}" loading="lazy">' \
           f"<figcaption>{caption}</figcaption></figure>"


def bar(share: float | None, color: str = "#4c72b0") -> str:
    """A number with a bar behind it (share in 0..1)."""
    if share is None or share != share:
        return "–"
    width = max(0.0, min(100.0, 100 * share))
    return f'<div class="bar"><span style="width:{width:.1f}%;background:{color}"></span>' \
           f"<em>{100 * share:.1f}%</em></div>"


def table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str = "") -> str:
    """An HTML table; cells are HTML already (escape text with :func:`esc`)."""
    th = "".join(f"<th>{h}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<div class="tablewrap"><table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody>' \
           "</table></div>"


def card(title: str, value: str, note: str = "", wide: bool = False) -> str:
    return f'<div class="card{" wide" if wide else ""}"><div class="k">{title}</div><div class="v">{value}</div>' \
           f'<div class="n">{note}</div></div>'


def section(anchor: str, title: str, body: str, lead: str = "") -> str:
    intro = f'<p class="lead">{lead}</p>' if lead else ""
    return f'<section id="{anchor}"><h2>{title}</h2>{intro}{body}</section>'

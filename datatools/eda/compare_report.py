"""The ``Splits`` section of the report (``eda --compare``) and its figure: distributions overlaid per split."""

from __future__ import annotations

from typing import Any

import numpy as np

from datatools.eda._html import ReportInput, esc, figure, num, pct, section, table
from datatools.eda.compare import CompareResult

__all__ = ["SPLIT_COLORS", "compare_jobs", "compare_section", "split_distributions"]

#: One colour per split (the analysed split first), then repeated.
SPLIT_COLORS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
#: Leakage rows shown in the report (all of them are in leakage.parquet).
MAX_LEAKAGE_SHOWN = 50
#: Features whose values spread over decades: drawn on a log axis.
_LOG_FEATURES = ("object side (px)", "object area (% of image)")
_KIND_TITLES = {"instances": "instances", "images": "images holding it", "pixels": "labelled pixels"}


def split_distributions(features: list[dict[str, Any]], splits: list[str]) -> bytes:
    """One small panel per feature: each split's distribution as a density histogram outline, overlaid."""
    from datatools.eda.plots import _figure, _log_x, _margins, _png

    cols = 3
    rows = -(-len(features) // cols)
    fig = _figure(10.5, 2.1 * rows + 0.5)
    _margins(fig, left=0.45, right=0.2, bottom=0.4, top=0.55, wspace=0.25, hspace=0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax, feat in zip(axes, features, strict=False):
        log = feat["name"] in _LOG_FEATURES
        present = [np.asarray(v, dtype=float) for v in feat["values"]]
        pooled = np.concatenate([v[np.isfinite(v)] for v in present] or [np.zeros(0)])
        if log:
            pooled = pooled[pooled > 0]
        if len(pooled) == 0:
            ax.set_visible(False)
            continue
        lo, hi = float(pooled.min()), float(pooled.max())
        if hi <= lo:
            hi = lo + 1.0
        edges = np.geomspace(lo, hi, 31) if log else np.linspace(lo, hi, 31)
        for k, values in enumerate(present):
            values = values[np.isfinite(values)]
            if len(values) == 0:
                continue
            density, _ = np.histogram(values, bins=edges, density=True)
            ax.stairs(density, edges, color=SPLIT_COLORS[k % len(SPLIT_COLORS)], lw=1.4, label=splits[k])
        if log:
            _log_x(ax)
        ax.set_title(feat["name"], fontsize=9)
        ax.set_yticks([])
    for ax in axes[len(features):]:
        ax.set_visible(False)
    axes[0].legend(loc="lower left", bbox_to_anchor=(0.0, 1.12), ncol=len(splits), handlelength=1.2)
    return _png(fig)


def compare_jobs(inp: ReportInput) -> list[tuple[str, dict[str, Any]]]:
    """The section's figure: ``("split_distributions", keyword arguments)``."""
    c = inp.compare
    if c is None:
        return []
    features = [{"name": name, "values": [v.tolist() for v in values]} for name, values in c.features.items()]
    return [("split_distributions", {"features": features, "splits": c.splits})]


def _share_table(c: CompareResult, kind: str) -> str:
    labelled = [i for i, lab in enumerate(c.labelled) if lab]
    flagged = set(c.flagged[kind])
    head = ["class"] + [esc(c.splits[i]) for i in labelled] + [f"Δ {esc(c.splits[i])}" for i in labelled[1:]]
    rows = []
    for j, name in enumerate(c.classes):
        row = [esc(name)]
        row += [f"{pct(c.shares[kind][i, j])} <span class=\"muted\">{num(int(c.counts[kind][i, j]))}</span>"
                for i in labelled]
        for i in labelled[1:]:
            d = c.shares[kind][i, j] - c.shares[kind][0, j]
            text = f"{100 * d:+.1f} pp"
            row.append(f'<span class="tag bad">{text}</span>' if (i, j) in flagged else text)
        rows.append(row)
    tv = ["total variation"] + ["" for _ in labelled] + [f"{c.tv[kind][i]:.3f}" for i in labelled[1:]]
    rows.append([f"<b>{t}</b>" if t else "" for t in tv])
    return f"<h3>Share of {_KIND_TITLES[kind]}</h3>" + table(head, rows, "shares")


def _ks_table(c: CompareResult) -> str:
    others = list(range(1, len(c.splits)))
    head = ["feature"] + [f"KS {esc(c.splits[i])}" for i in others] + [f"p {esc(c.splits[i])}" for i in others]
    rows = []
    for feat, values in c.ks.items():
        stats = [values[i] for i in others]
        rows.append([esc(feat)] + ["–" if r is None else f"{r[0]:.3f}" for r in stats]
                    + ["–" if r is None else f"{r[1]:.2g}" for r in stats])
    return table(head, rows, "ks")


def _leakage_table(c: CompareResult) -> str:
    if not c.leakage:
        return '<p class="good">No image of one split is an exact or near duplicate of an image of another.</p>'
    rows = [[esc(a), f'<code>{esc(fa)}</code>', esc(b), f'<code>{esc(fb)}</code>',
             f'<span class="tag {"error" if kind == "exact" else "warning"}">{kind}</span>', str(d)]
            for a, fa, b, fb, kind, d in c.leakage[:MAX_LEAKAGE_SHOWN]]
    more = (f'<p class="note">{len(c.leakage) - MAX_LEAKAGE_SHOWN} more pairs in leakage.parquet.</p>'
            if len(c.leakage) > MAX_LEAKAGE_SHOWN else "")
    return table(["split", "image", "split", "image", "kind", "pHash distance"], rows, "leakage") + more


def compare_section(inp: ReportInput, figs: dict[str, bytes]) -> str:
    """The ``Splits`` section, or ``""`` without ``--compare``."""
    c = inp.compare
    if c is None:
        return ""
    names = ", ".join(f"<b>{esc(s)}</b> ({num(n)} images{'' if lab else ', unlabelled'})"
                      for s, n, lab in zip(c.splits, c.images, c.labelled, strict=True))
    exact = sum(r[4] == "exact" for r in c.leakage)
    body = f"<p>Splits: {names}. Differences (Δ, percentage points) and distances are against " \
           f"<b>{esc(c.splits[0])}</b>; the largest difference per split, and any of 10 pp or more, is flagged.</p>"
    if any(c.labelled[1:]):
        body += "".join(_share_table(c, kind) for kind in ("instances", "images", "pixels"))
    body += "<h3>Distributions</h3>" + figure(figs.get("split_distributions"), "feature distributions per split",
                                             "density per split; Kolmogorov-Smirnov statistic below (0: same "
                                             "distribution, 1: disjoint)")
    body += _ks_table(c)
    body += (f"<h3>Leakage across splits ({exact} exact, {len(c.leakage) - exact} near)</h3>"
             "<p>Same pixels (exact), or a perceptual-hash distance of at most 8 of 64 bits over the eight "
             "flips and rotations (near), as <code>folds check</code> counts them.</p>" + _leakage_table(c))
    return section("splits", "Splits", body, "The analysed split against the others given with --compare.")

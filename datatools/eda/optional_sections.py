"""The sections of the EDA report that depend on options: gallery (7), folds and meta data (8)."""

from __future__ import annotations

from typing import Any

import numpy as np

from datatools.core.classes import plot_label
from datatools.eda._html import ReportInput, chip, esc, figure, num, pct, section, table, thumb
from datatools.eda.folds import SHARE_KINDS

Job = tuple[str, dict[str, Any]]
Figures = dict[str, bytes]

_KIND_TITLES = {"pixel_share": "share of the fold's pixels (background included)",
                "labelled_share": "share of the fold's labelled pixels",
                "image_share": "share of the fold's images containing it",
                "instance_share": "share of the fold's instances"}
_KIND_HEADS = {"pixel_share": "share of all pixels", "labelled_share": "share of labelled pixels",
               "image_share": "images containing it", "instance_share": "instance share"}


def extra_jobs(inp: ReportInput) -> list[Job]:
    """Figures of section 8."""
    jobs: list[Job] = []
    fb = inp.balance
    keep = [v - 1 for v in inp.present_values()]  # classes without instances would only add empty columns
    labels = [inp.labels[k] for k in keep]
    if fb is not None and fb.folds and keep:
        for kind in ("labelled_share", "image_share"):
            jobs.append((f"fold_{kind}", {"folds": fb.folds, "labels": labels,
                                          "shares": fb.shares[kind][:, keep].tolist(),
                                          "overall": fb.overall[kind][keep].tolist(),
                                          "title": f"{_KIND_TITLES[kind]}, % (colour: deviation from all)"}))
    meta = inp.meta
    if meta is not None and meta.columns and keep:
        jobs.append(("meta_distributions", {"columns": [
            {"name": c.name, "kind": c.kind, "values": c.values, "categories": c.categories} for c in meta.columns]}))
        numeric = [c for c in meta.columns if c.kind == "numeric"]
        if numeric:
            jobs.append(("meta_numeric", {
                "names": [c.name for c in numeric], "labels": labels,
                "values": [c.relation[0][keep].tolist() for c in numeric], "value_label": "Spearman r",
                "title": "rank correlation with each class's pixel share per image", "diverging": True}))
        for n, col in enumerate(c for c in meta.columns if c.kind == "categorical"):
            if n >= 4:
                break
            jobs.append((f"meta_cat_{n}", {
                "names": col.categories, "labels": labels, "values": col.relation[:, keep].tolist(),
                "value_label": "share of images", "diverging": False,
                "title": f"{plot_label(col.name)}: share of images containing each class"}))
    return jobs


def plot_name(job_name: str) -> str:
    """The registered figure a job renders (job names can be more specific)."""
    if job_name.startswith("fold_"):
        return "fold_balance"
    if job_name.startswith("meta_cat_") or job_name == "meta_numeric":
        return "meta_relation"
    return job_name


def gallery_section(inp: ReportInput) -> str:
    if not inp.read_pixels:
        return section("gallery", "7. Gallery", '<p class="note">Images were not read (<code>--no-images</code>).</p>')
    img, cls = inp.tables.images, inp.tables.classes
    blocks = []
    for value, indices in inp.picks.items():
        thumbs = [thumb(inp.totals.thumbnails[i], img["file_name"][i],
                        f"{img['n_annotations'][i]} object(s): {esc(', '.join(img['classes'][i]))}<br>"
                        f"<span class=\"fn\">{esc(img['file_name'][i])}</span>")
                  for i in indices if i in inp.totals.thumbnails]
        if not thumbs:
            continue
        tag = ' <span class="tag bad">rare</span>' if cls["rare"][value] else ""
        blocks.append(f"<h3>{chip(inp.color(value))}{esc(inp.labels[value - 1])}{tag} "
                      f'<span class="muted">{num(cls["instances"][value])} instances in '
                      f'{num(cls["images"][value])} images</span></h3><div class="grid">{"".join(thumbs)}</div>')
    lead = ("For each class, rare classes first, a few of the images that show it most, with every mask filled and "
            "outlined in its class colour.")
    body = "".join(blocks) or '<p class="note">No annotated image to show.</p>'
    return section("gallery", "7. Gallery", body, lead)


def folds_section(inp: ReportInput, figs: Figures) -> str:
    fb = inp.balance
    if fb is None:
        return ""
    s = inp.summary["folds"]
    lead = (f"{len(fb.folds)} folds from <code>{esc(s['file'])}</code>; images per fold: "
            f"{', '.join(str(n) for n in fb.images.tolist())}.")
    if fb.unassigned:
        lead += f" <b>{fb.unassigned}</b> image(s) of the dataset are not in the folds table."
    if fb.unknown:
        lead += f" <b>{fb.unknown}</b> row(s) of the folds table name images that are not in the dataset."
    largest = s["labelled_share"].get("largest")
    if largest:
        lead += (f" Largest deviation of a share of labelled pixels (the base <code>datatools folds</code> reports "
                 f"as <i>pixels</i>): <b>{esc(largest['class'])}</b> in fold {largest['fold']}, "
                 f"<b>{100 * largest['deviation']:+.2f}</b> points.")
    rows = []
    for k, label in enumerate(fb.labels):
        rows.append([f"{chip(inp.color(k + 1))}{esc(label)}"]
                    + [f'{pct(fb.overall[kind][k])} <span class="muted">±{100 * fb.max_deviation(kind)[k]:.2f}</span>'
                       for kind in SHARE_KINDS])
    body = figure(figs.get("fold_labelled_share"), "per-fold share of labelled pixels")
    body += figure(figs.get("fold_image_share"), "per-fold image share")
    body += "<h3>Share over all folds, and the largest deviation of a fold from it (percentage points)</h3>" + table(
        ["class", *(_KIND_HEADS[kind] for kind in SHARE_KINDS)], rows)
    return section("folds", "8. Folds", body, lead)


def meta_section(inp: ReportInput, figs: Figures) -> str:
    meta = inp.meta
    if meta is None:
        return ""
    n = len(inp.tables.images["image_id"])
    lead = (f"<code>{esc(meta.path)}</code>: {meta.rows} row(s), key <code>{esc(meta.key)}</code> matched "
            f"<b>{meta.matched}</b> of {n} images (by {esc(meta.matched_by)}).")
    if meta.skipped:
        lead += f" Skipped (identifiers or free text): {esc(', '.join(meta.skipped))}."
    rows = []
    for col in meta.columns:
        vals = [v for v in col.values if v is not None]
        if col.kind == "numeric" and vals:
            arr = np.asarray(vals, dtype=float)
            desc = f"median {np.median(arr):.3g}, range {arr.min():.3g} – {arr.max():.3g}"
        else:
            desc = ", ".join(esc(c) for c in col.categories[:8])
        rows.append([esc(col.name), col.kind, num(len(vals)), desc])
    body = table(["column", "kind", "images with a value", "values"], rows)
    body += figure(figs.get("meta_distributions"), "meta distributions")
    body += figure(figs.get("meta_numeric"), "meta against classes", "Spearman rank correlation between the "
                   "column and each class's share of the image's pixels (blank: not enough values).")
    for k in range(4):
        body += figure(figs.get(f"meta_cat_{k}"), "meta categories against classes")
    return section("meta", "8. Meta data" if inp.balance is None else "9. Meta data", body, lead)

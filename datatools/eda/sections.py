"""The sections of the EDA report (1-6): what each shows, and the figures it needs.

Each ``*_jobs`` function lists figures as ``(name, keyword arguments)`` for :func:`datatools.eda.plots.render_plot`;
each ``*_section`` returns HTML given the rendered figures.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from datatools.eda._html import ReportInput, bar, chip, esc, figure, num, pct, section, table, thumb
from datatools.eda.plots import human
from datatools.eda.tables import COCO_MEDIUM, COCO_SMALL, OUTLIER_PLAIN_Z, OUTLIER_Z

Job = tuple[str, dict[str, Any]]
Figures = dict[str, bytes]


def _present(inp: ReportInput) -> tuple[list[int], list[str], list[list[int]]]:
    values = inp.present_values()
    return values, [inp.labels[v - 1] for v in values], [inp.colors[v].tolist() for v in values]


def core_jobs(inp: ReportInput) -> list[Job]:
    """Figures of sections 1-5."""
    cls, ann, img = inp.tables.classes, inp.tables.annotations, inp.tables.images
    rows = inp.class_rows()
    jobs: list[Job] = []
    if rows:
        jobs.append(("class_balance", {
            "labels": [inp.labels[cls["value"][i] - 1] for i in rows],
            "colors": [inp.colors[cls["value"][i]].tolist() for i in rows],
            "instances": [int(cls["instances"][i]) for i in rows],
            "image_share": [float(cls["image_share"][i]) for i in rows],
            "labelled_share": [float(cls["labelled_share"][i] or 0.0) for i in rows],
            "rare": [bool(cls["rare"][i]) for i in rows], "threshold": inp.summary["rare"]["threshold"]}))
    values, labels, colors = _present(inp)
    vals = inp.tables.ann_value
    if values:
        px = ann["pixel_area"]
        jobs.append(("object_sizes", {
            "labels": labels, "colors": colors,
            "sides": [np.sqrt(px[vals == v]).tolist() for v in values],
            "rel_areas": [ann["rel_area"][vals == v].tolist() for v in values],
            "buckets": [[float(cls[k][v]) for k in ("small_share", "medium_share", "large_share")] for v in values]}))
        co = np.zeros((len(values), len(values)), dtype=np.int64)
        present = np.zeros((len(img["image_id"]), len(inp.labels) + 1), dtype=bool)
        present[inp.tables.ann_image, vals] = True
        sub = present[:, values].astype(np.int64)
        co = sub.T @ sub
        jobs.append(("cooccurrence", {"labels": labels, "counts": co.tolist()}))
        pair = inp.totals.pair_px[np.ix_(values, values)]
        if pair.any():
            jobs.append(("pixel_overlap", {"labels": labels, "pixels": pair.tolist()}))
        heat = inp.totals.heat
        jobs.append(("spatial_heatmaps", {"labels": labels, "heat": [heat[v].astype(float) for v in values],
                                          "images_with": [int(present[:, v].sum()) for v in values]}))
    if len(img["image_id"]):
        jobs.append(("objects_per_image", {"n_annotations": img["n_annotations"].tolist(),
                                           "n_classes": img["n_classes"].tolist()}))
        if len(set(zip(img["width"].tolist(), img["height"].tolist(), strict=True))) > 6:
            jobs.append(("image_sizes", {"widths": img["width"].tolist(), "heights": img["height"].tolist()}))
    norm = inp.summary.get("normalize")
    if inp.read_pixels and norm:
        means = np.stack([img["mean_r"], img["mean_g"], img["mean_b"]], axis=1)
        jobs.append(("channel_means", {"means": means.tolist(), "mean": norm["mean"], "std": norm["std"]}))
        jobs.append(("brightness_contrast", {
            "brightness": img["brightness"].tolist(), "contrast": img["contrast"].tolist(),
            "b_outlier": img["brightness_outlier"].tolist(), "c_outlier": img["contrast_outlier"].tolist(),
            "marks": inp.outliers}))
    return jobs


def class_section(inp: ReportInput, figs: Figures) -> str:
    cls = inp.tables.classes
    rare = inp.summary["rare"]
    names = ", ".join(f"<b>{esc(n)}</b>" for n in rare["classes"])
    lead = (f"Rare classes ({esc(rare['rule'])}): {names}." if rare["classes"]
            else f"No rare class (rare: {esc(rare['rule'])}).")
    if rare["absent"]:
        lead += f" Absent (no image holds them, so not rare): {', '.join(f'<b>{esc(n)}</b>' for n in rare['absent'])}."
    lead += f" Background is <b>{pct(inp.summary['background_share'])}</b> of all pixels."
    rows = []
    for i in range(len(cls["value"])):
        v = int(cls["value"][i])
        color = inp.color(v) if 0 < v < 255 else ("#000000" if v == 0 else "#ffffff")
        flag = ""
        if 0 < v < 255 and not cls["images"][i]:
            flag = '<span class="tag">absent</span>'
        elif 0 < v < 255 and cls["rare"][i]:
            flag = '<span class="tag bad">rare</span>'
        rows.append([f"{chip(color)}{esc(cls['name'][i])}", num(cls["instances"][i]), num(cls["images"][i]),
                     bar(cls["image_share"][i], color if v else "#888"), bar(cls["pixel_share"][i], color if v else
                                                                                "#888"),
                     pct(cls["labelled_share"][i]), num(cls["instances_per_image"][i]), flag])
    body = figure(figs.get("class_balance"), "class balance", "Bars outlined in red: rare classes; dashed line: "
                  "the rare threshold (images containing the class).")
    body += table(["class", "instances", "images", "images containing it", "share of all pixels",
                   "share of labelled pixels", "instances per image", ""], rows, "classes")
    return section("classes", "1. Class balance", body, lead)


def size_section(inp: ReportInput, figs: Figures) -> str:
    cls = inp.tables.classes
    s = inp.summary
    rows = []
    for i in inp.class_rows():
        if not cls["instances"][i]:
            continue
        v = int(cls["value"][i])
        med = cls["median_pixel_area"][i]
        rows.append([f"{chip(inp.color(v))}{esc(cls['name'][i])}", num(cls["instances"][i]),
                     num(round(float(np.sqrt(med)))) if med is not None else "–", pct(cls["median_rel_area"][i], 2),
                     pct(cls["small_share"][i]), pct(cls["medium_share"][i]), pct(cls["large_share"][i])])
    opi = s["objects_per_image"]
    lead = (f"COCO sizes by pixel area: small &lt; {COCO_SMALL} px (32²), medium &lt; {COCO_MEDIUM} px (96²), large "
            f"above. Over all objects: small {pct(s['object_size']['small'])}, medium "
            f"{pct(s['object_size']['medium'])}, large {pct(s['object_size']['large'])}. Objects per image: median "
            f"{num(opi['median'])}, mean {opi['mean']:.2f}, max {opi['max']}; {opi['images_without_annotations']} "
            "image(s) without any annotation.")
    body = figure(figs.get("object_sizes"), "object sizes per class", "Dashed lines at 32 and 96 px: the COCO "
                  "small | medium | large limits.")
    body += table(["class", "objects", "median side, px", "median area, % of image", "small", "medium", "large"],
                  rows)
    body += figure(figs.get("objects_per_image"), "objects per image")
    return section("sizes", "2. Object size and objects per image", body, lead)


def image_section(inp: ReportInput, figs: Figures) -> str:
    s, img = inp.summary, inp.tables.images
    sizes = s["image_sizes"]
    size_text = ", ".join(f"{d['width']}×{d['height']} ({d['images']})" for d in sizes[:6])
    body = f"<p>Image sizes (width×height, images): {size_text}" + (" …" if len(sizes) > 6 else "") + "</p>"
    body += figure(figs.get("image_sizes"), "image sizes")
    norm = s.get("normalize")
    if not inp.read_pixels or not norm:
        body += '<p class="note">Images were not read (<code>--no-images</code>): no pixel statistics.</p>'
        return section("images", "3. Images", body)
    m, sd = norm["mean"], norm["std"]
    fmt = ", ".join
    body += ('<div class="normalize"><div><b>Normalize</b> (RGB, over every pixel of every image, 0-1 scale)'
             f"</div><pre>A.Normalize(mean=({fmt(f'{v:.4f}' for v in m)}), std=({fmt(f'{v:.4f}' for v in sd)}))\n"
             f"T.Normalize(mean=[{fmt(f'{v:.4f}' for v in m)}], std=[{fmt(f'{v:.4f}' for v in sd)}])\n"
             f"# 0-255 scale: mean=({fmt(f'{255 * v:.2f}' for v in m)}), std=({fmt(f'{255 * v:.2f}' for v in sd)})"
             "</pre></div>")
    body += figure(figs.get("channel_means"), "per-image channel means")
    b_out = int(img["brightness_outlier"].sum())
    c_out = int(img["contrast_outlier"].sum())
    body += ("<p>Brightness is the mean and contrast the standard deviation of the BT.601 luma "
             f"(0.299 R + 0.587 G + 0.114 B). Outliers (modified "
             f"z-score above {OUTLIER_Z} and z-score above {OUTLIER_PLAIN_Z}): <b>{b_out}</b> by brightness, "
             f"<b>{c_out}</b> by contrast.</p>")
    body += figure(figs.get("brightness_contrast"), "brightness and contrast")
    thumbs = []
    for number, i in enumerate(inp.outliers, start=1):
        jpeg = inp.totals.thumbnails.get(i)
        if jpeg is None:
            continue
        why = [w for w, flag in (("dark" if img["brightness"][i] < np.nanmedian(img["brightness"]) else "bright",
                                  img["brightness_outlier"][i]),
                                 ("low contrast" if img["contrast"][i] < np.nanmedian(img["contrast"]) else
                                  "high contrast", img["contrast_outlier"][i])) if flag]
        thumbs.append(thumb(jpeg, img["file_name"][i], f"<b>{number}</b> · {', '.join(why)} · brightness "
                            f"{img['brightness'][i]:.0f}, contrast {img['contrast'][i]:.0f}<br>"
                            f"<span class=\"fn\">{esc(img['file_name'][i])}</span>"))
    if thumbs:
        body += '<h3>Outlier images</h3><div class="grid">' + "".join(thumbs) + "</div>"
    return section("images", "3. Images: size, colour, brightness, contrast", body)


def overlap_section(inp: ReportInput, figs: Figures) -> str:
    ov = inp.summary["overlap"]
    img = inp.tables.images
    labelled = max(int(sum(inp.tables.classes["pixels"][i] for i in inp.class_rows())), 1)
    lead = (f"<b>{ov['images_with_overlap']}</b> image(s) have overlapping annotations: "
            f"<b>{human(ov['pixels_claimed_twice'])}</b> pixels are claimed by two or more annotations, "
            f"<b>{human(ov['pixels_claimed_by_two_classes'])}</b> by two or more classes (in "
            f"{ov['images_with_class_conflict']} image(s)). Only those can change with the overlap policy.")
    chosen = inp.summary["overlap_policy"]
    rows = []
    for policy, changed in ov["changed_px"].items():
        affected = int((np.asarray(img[f"changed_px_{policy}"]) > 0).sum())
        name = f"<b>{esc(policy)}</b> (used)" if policy == chosen else esc(policy)
        rows.append([name, num(changed), pct(changed / labelled, 3), num(affected)])
    body = '<div class="pair">' + figure(
        figs.get("cooccurrence"), "co-occurrence", "Colour: share of the row class's images that also contain the "
        "column class; number: images with both (diagonal: images with the class).")
    body += figure(figs.get("pixel_overlap"), "pixel overlap", "Pixels claimed by both classes; diagonal: by two "
                   "annotations of the same class.") + "</div>"
    body += "<h3>Overlap policies</h3>" + table(
        ["policy", "pixels labelled differently", "of labelled pixels", "images affected"], rows)
    return section("overlap", "4. Co-occurrence and overlap", body, lead)


def spatial_section(inp: ReportInput, figs: Figures) -> str:
    lead = ("Where each class's objects sit: every image is mapped onto the same grid, and each cell shows the share "
            "of the class's images in which one of its annotations covers it (each class on its own scale). A "
            "strong prior tells whether crops, flips or a fixed layout suit the data.")
    body = figure(figs.get("spatial_heatmaps"), "spatial heat maps")
    lateral = inp.summary.get("lateral") or {"pairs": []}
    if lateral["pairs"]:
        rows = []
        for pair in lateral["pairs"]:
            sides = ("left", "right") if pair["flip"] == "horizontal" else ("top", "bottom")
            for label in pair["classes"]:
                row = lateral["sides"][label]
                rows.append([esc(label), esc(pair["flip"]), num(row["images"]),
                             *(f"{100 * row[s]:.0f}%" for s in sides)])
        body += ("<h3>Lateral classes</h3><p>Class pairs a flip swaps (found from their names; "
                 "<code>--lateral-pairs</code> of augment and train), and the share of each class's images in which "
                 "it sits on each side of the image (first/second side: left/right or top/bottom).</p>"
                 + table(["class", "swapped by", "images", "first side", "second side"], rows))
    return section("spatial", "5. Spatial prior", body, lead)


def problems_section(inp: ReportInput) -> str:
    p = inp.summary["problems"]
    by_code: dict[tuple[str, str], list[str]] = defaultdict(list)
    for issue in inp.issues:
        by_code[(issue.severity.value, issue.code)].append(issue.message)
    order = {"error": 0, "warning": 1, "info": 2}
    rows = []
    for (sev, code), messages in sorted(by_code.items(), key=lambda kv: (order[kv[0][0]], kv[0][1])):
        examples = "<br>".join(esc(m) for m in messages[:3]) + (f"<br>… and {len(messages) - 3} more"
                                                                  if len(messages) > 3 else "")
        rows.append([f'<span class="tag {sev}">{sev}</span>', f"<code>{esc(code)}</code>", num(len(messages)),
                     examples])
    lead = (f"From <code>datatools validate</code> on the records and this pass over the files: <b>{p['error']}</b> "
            f"error(s), <b>{p['warning']}</b> warning(s), <b>{p['info']}</b> info.")
    if inp.dropped:
        lead += f" <b>{inp.dropped}</b> record(s) with errors were dropped (--skip-invalid) before the analysis."
    body = table(["severity", "code", "count", "examples"], rows, "problems") if rows else \
        '<p class="good">No problems found.</p>'
    return section("problems", "6. Annotation problems", body, lead)

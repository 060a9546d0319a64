"""``run_eda``: the API behind ``datatools eda``.

Records are read and validated, the images are streamed once through :func:`image_stats` over the parallel
map, and the tables, ``summary.json`` and a self-contained ``report.html`` are written into ``out`` at once.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datatools.core.atomic import check_output_dir, output_dir
from datatools.core.classes import ClassMap
from datatools.core.coco import read_coco_json
from datatools.core.dataset import Dataset, resolve_input
from datatools.core.errors import DatatoolsError, InvalidDatasetError
from datatools.core.issues import Issue, Severity, summarize
from datatools.core.masks import OverlapPolicy
from datatools.core.parallel import parallel_map
from datatools.core.paths import require_folder
from datatools.core.rarity import RARE_THRESHOLD
from datatools.core.validate import validate_records
from datatools.core.validate_files import validate_files
from datatools.eda.accumulate import Totals, run_pass
from datatools.eda.colors import class_colors
from datatools.eda.compare import CompareSpec, SplitData, compare_splits, parse_compare, split_name, unlabelled_coco
from datatools.eda.gallery import pick_gallery, source_key
from datatools.eda.lateral import lateral_summary
from datatools.eda.stats import ImageJob, StatsConfig, image_thumbnail
from datatools.eda.tables import EdaTables, build_summary, build_tables, write_parquet
from datatools.eda.warmup import start_warmup

__all__ = ["EdaResult", "run_eda"]

#: Outlier images shown (the most extreme first).
MAX_OUTLIERS_SHOWN = 8


@dataclass(frozen=True)
class EdaResult:
    """Where the report went and its headline numbers.

    Attributes:
        out: the output folder (``report.html``, ``summary.json``, ``*.parquet``).
        summary: the content of ``summary.json``.
        timings: seconds spent in each phase (records, pass, tables, figures, write), for benchmarks.
    """

    out: Path
    summary: dict[str, Any] = field(repr=False)
    timings: dict[str, float] = field(default_factory=dict, repr=False)

    @property
    def report(self) -> Path:
        return self.out / "report.html"


class _Clock:
    def __init__(self) -> None:
        self.laps: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps[name] = round(now - self._last, 4)
        self._last = now


def _slim(ann: dict[str, Any]) -> dict[str, Any]:
    """What the rasteriser needs of an annotation: less to send to the workers."""
    return {k: ann[k] for k in ("id", "category_id", "segmentation", "iscrowd") if k in ann}


def _open(ann: Path, root: Path, read_images: bool, check_root: bool, skip_invalid: bool, workers: int | None,
          progress: bool) -> tuple[Dataset, list[Issue], tuple[int, int]]:
    """The dataset and every record problem; errors refuse it unless ``skip_invalid`` drops their records.

    With ``skip_invalid``, images whose file is missing or unreadable (header) are dropped here too, before the
    pass, so that every count of the report is of the images it analysed. ``check_root``: the image folder
    must exist (it is read, or the user named it)."""
    if check_root:
        require_folder(root, hint="(pass --no-images for an annotation-only report)")
    coco = read_coco_json(ann)
    issues = validate_records(coco, str(ann))
    if skip_invalid and read_images:
        issues += validate_files(coco, root, workers=workers, progress=progress)
    errors = [i for i in issues if i.severity is Severity.ERROR]
    ds = Dataset(coco, root, ann)
    if errors and not skip_invalid:
        more = f" (and {len(errors) - 1} more errors; run `datatools validate`)" if len(errors) > 1 else ""
        raise InvalidDatasetError(f"{errors[0].file}: {errors[0].message}{more}; pass --skip-invalid to drop "
                                  "the broken records and report them")
    if errors:
        ds = ds.drop_records(errors)  # the same dropping as Dataset.load(skip_invalid=True)
    return ds, issues, (len(coco["images"]), len(coco["annotations"]))


def _plan(ds: Dataset, cm: ClassMap, read_images: bool, gallery: int) -> tuple[list[ImageJob], dict[int, list[int]]]:
    """One job per image, and the gallery picks (rare classes first) whose thumbnails the pass renders."""
    value_of = {c.category_id: c.value for c in cm.classes}
    anns_by_image = [ds.annotations_of(img["id"]) for img in ds.images]
    instances = np.bincount([value_of[a["category_id"]] for a in ds.annotations], minlength=len(cm) + 1)
    rare_first = sorted((v for v in range(1, len(cm) + 1) if instances[v]), key=lambda v: (instances[v], v))
    picks: dict[int, list[int]] = {}
    if read_images and gallery:
        sources = [source_key(str(img["file_name"])) for img in ds.images]
        picks = pick_gallery(anns_by_image, rare_first, value_of, per_class=gallery, sources=sources)
    thumbs = {i for chosen in picks.values() for i in chosen}
    jobs = [ImageJob(i, img["id"], img["file_name"], img["height"], img["width"], [_slim(a) for a in anns],
                     (img.get("datatools") or {}).get("ignore", []), i in thumbs)
            for i, (img, anns) in enumerate(zip(ds.images, anns_by_image, strict=True))]
    return jobs, picks


def _open_compared(specs: list[CompareSpec], policy: OverlapPolicy, skip_invalid: bool, workers: int | None,
                   progress: bool) -> list[tuple[CompareSpec, Dataset, list[Issue]]]:
    """The records of every ``--compare`` split, checked before any image is read."""
    opened: list[tuple[CompareSpec, Dataset, list[Issue]]] = []
    for spec in specs:
        if spec.ann is None:
            root = require_folder(spec.root)
            opened.append((spec, Dataset(unlabelled_coco(root), root, None), []))
        else:
            ds, issues, _ = _open(spec.ann, spec.root, True, True, skip_invalid, workers, progress)
            if policy.priority:
                ds.class_map().values_by_name(policy.priority)
            opened.append((spec, ds, issues))
    return opened


def _compared_pass(opened: list[tuple[CompareSpec, Dataset, list[Issue]]], policy: OverlapPolicy,
                   skip_invalid: bool, workers: int | None, progress: bool) -> list[SplitData]:
    """eda's image pass over each ``--compare`` split, with the images' fingerprints."""
    splits = []
    for spec, ds, _ in opened:
        cm = ds.class_map()
        jobs, _ = _plan(ds, cm, True, 0)
        cfg = StatsConfig(str(ds.image_root), cm, policy, fingerprint=True)
        totals = run_pass(jobs, cfg, workers=workers, progress=progress)
        _refuse_file_errors(totals, skip_invalid)
        splits.append(SplitData(spec.name, ds, cm, totals, labelled=spec.ann is not None))
    return splits


def _outliers(tables: EdaTables) -> list[int]:
    """Positions of the brightness or contrast outliers to show, the most extreme first."""
    img = tables.images
    flagged = np.flatnonzero(img["brightness_outlier"] | img["contrast_outlier"]).tolist()
    if not flagged:
        return []
    b, c = img["brightness"], img["contrast"]
    z = np.abs(b - np.nanmedian(b)) / (np.nanstd(b) + 1e-9) + np.abs(c - np.nanmedian(c)) / (np.nanstd(c) + 1e-9)
    return sorted(flagged, key=lambda i: (-z[i], i))[:MAX_OUTLIERS_SHOWN]


def _output_task(task: tuple[str, Any]) -> bytes | None:
    """One piece of the output phase: write the parquet tables, render a figure or an outlier thumbnail."""
    kind, payload = task
    if kind == "tables":
        folder, tables = payload
        for name, columns in tables.items():
            write_parquet(Path(folder) / name, columns)
        return b""
    if kind == "thumbnail":
        job, cfg = payload
        return image_thumbnail(job, cfg)
    from datatools.eda.plots import render_plot

    return render_plot(payload)


def _write(out: Path, overwrite: bool, tables: dict[str, dict[str, Any]], inp: Any, thumbs: list[ImageJob],
           cfg: StatsConfig, workers: int | None, clock: _Clock, warmup: threading.Thread | None = None) -> None:
    """Write everything into ``out`` at once: the tables, figures and thumbnails are made over one pool
    (forked once ``warmup`` has loaded its libraries)."""
    from datatools.eda.report import figure_jobs, render_report

    if warmup is not None:
        warmup.join()
    with output_dir(out, overwrite) as tmp:
        wanted = figure_jobs(inp)
        tasks: list[tuple[str, Any]] = [("tables", (str(tmp), tables))]
        tasks += [("thumbnail", (job, cfg)) for job in thumbs] + [("figure", job) for _, job in wanted]
        done = parallel_map(_output_task, tasks, workers=workers, desc="eda: figures", progress=False, chunksize=1)
        for job, jpeg in zip(thumbs, done[1:], strict=False):
            if jpeg is not None:
                inp.totals.thumbnails[job.index] = jpeg
        figures = {name: png or b"" for (name, _), png in zip(wanted, done[1 + len(thumbs):], strict=True)}
        clock.lap("figures")
        # plain writes: the staging folder already makes the whole output atomic
        text = json.dumps(inp.summary, ensure_ascii=False, indent=1, allow_nan=False)
        (tmp / "summary.json").write_text(text + "\n", encoding="utf-8")
        (tmp / "report.html").write_text(render_report(inp, figures), encoding="utf-8")
    clock.lap("write")


def _problems(issues: list[Issue]) -> dict[str, Any]:
    codes: dict[str, int] = {}
    for issue in issues:
        codes[issue.code] = codes.get(issue.code, 0) + 1
    return {**summarize(issues), "codes": dict(sorted(codes.items()))}


def _refuse_file_errors(totals: Totals, skip_invalid: bool) -> None:
    errors = [i for i in totals.issues if i.severity is Severity.ERROR]
    if errors and not skip_invalid:
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        raise InvalidDatasetError(f"{errors[0].file}: {errors[0].message}{more}; pass --skip-invalid to report "
                                  "them and go on")


def run_eda(
    ann: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str],
    folds: str | os.PathLike[str] | None = None,
    partial_folds: bool = False,
    meta: str | os.PathLike[str] | None = None,
    meta_key: str | None = None,
    overlap: str | OverlapPolicy = "smaller-on-top",
    read_images: bool = True,
    rare_threshold: float = RARE_THRESHOLD,
    gallery: int = 4,
    skip_invalid: bool = False,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = True,
    compare: Sequence[str | CompareSpec] = (),
) -> EdaResult:
    """Write the EDA of a dataset: ``report.html``, ``summary.json``, ``images/annotations/classes.parquet``.

    Args:
        ann: COCO json (or use ``data``).
        images: image root (not needed without ``read_images``; checked when given).
        data: dataset folder written by datatools.
        out: output folder; refused when it exists and is not empty, unless ``overwrite``.
        folds: a folds table (``folds.parquet``): adds per-fold class balance and a ``fold`` column.
        partial_folds: accept a folds table that covers only part of the dataset (see
            :func:`datatools.core.folds_table.check_belongs`).
        meta: a CSV or Excel table of per-image or per-subject meta data, matched on ``meta_key``.
        meta_key: the column of ``meta`` that names the image (id, file name, stem or folder).
        overlap: overlap policy for the pixel counts (see ``datatools.core.masks.Overlap``).
        read_images: decode the images (``False``: annotation-only report, no image statistics or gallery).
        rare_threshold: a class is rare when fewer images hold it than this fraction of the images holding the
            most common class (:mod:`datatools.core.rarity`); a class no image holds is absent, not rare.
        gallery: images per class in the gallery (0: none).
        skip_invalid: drop records and images with errors (they are listed in the report) instead of refusing.
        overwrite: replace a non-empty ``out``.
        workers: processes for the image pass (default: all cores).
        progress: show progress bars.
        compare: other splits to compare with this one (``[NAME=]PATH``, see
            :func:`datatools.eda.compare.parse_compare`): class shares, feature distributions and leakage in a
            Splits section, ``summary.json["compare"]`` and ``leakage.parquet``. Needs ``read_images``.

    Returns:
        The output folder and the summary.

    Raises:
        InvalidDatasetError, UnreadableFileError: broken input; nothing is written.
        OutputExistsError: ``out`` is not empty and ``overwrite`` is False.

    Example:
        >>> result = run_eda("train.json", "images/", out="eda/", folds="folds.parquet")
        >>> result.summary["normalize"]["mean"]
        [0.49, 0.475, 0.44]
    """
    from datatools.eda.folds import fold_balance, folds_of_images
    from datatools.eda.meta import analyse_meta, read_meta
    from datatools.eda.report import ReportInput

    clock = _Clock()
    policy = OverlapPolicy.parse(overlap)
    check_output_dir(out, overwrite)
    if (meta is None) != (meta_key is None):
        raise DatatoolsError("--meta and --meta-key go together")
    specs = [c if isinstance(c, CompareSpec) else parse_compare(str(c)) for c in compare]
    if specs and not read_images:
        raise DatatoolsError("--compare reads the images (leakage, image statistics): drop --no-images")
    if not read_images and ann is not None and images is None and data is None:  # records alone make the report
        ann_path, root = Path(ann), Path(ann).parent
    else:
        ann_path, root = resolve_input(ann, images, data)
    ds, issues, in_file = _open(ann_path, root, read_images, read_images or images is not None, skip_invalid, workers,
                                progress)
    cm = ds.class_map()
    if policy.priority:
        cm.values_by_name(policy.priority)  # unknown class names fail before the pass
    labels, colors = cm.display_names(), class_colors(len(cm))
    meta_table = read_meta(meta, meta_key) if meta is not None and meta_key is not None else None
    fold_info = folds_of_images(folds, ds, partial=partial_folds) if folds is not None else None
    names = [split_name(ann_path)] + [s.name for s in specs]
    if len(set(names)) < len(names):
        raise DatatoolsError(f"--compare: two splits are named alike ({', '.join(names)}); name them: NAME=PATH")
    opened = _open_compared(specs, policy, skip_invalid, workers, progress)
    jobs, picks = _plan(ds, cm, read_images, gallery)
    cfg = StatsConfig(str(root), cm, policy, read_pixels=read_images, palette=colors, fingerprint=bool(specs))
    clock.lap("records")
    others = _compared_pass(opened, policy, skip_invalid, workers, progress)  # before the warm-up thread starts
    clock.lap("compared")

    warm: list[threading.Thread] = []  # the output phase's imports, done while the pass's workers run
    totals = run_pass(jobs, cfg, workers=workers, progress=progress, on_start=lambda: warm.append(start_warmup()))
    clock.lap("pass")
    _refuse_file_errors(totals, skip_invalid)

    anns_by_image = [ds.annotations_of(img["id"]) for img in ds.images]
    tables, threshold = build_tables(ds.images, ds.annotations, anns_by_image, totals, cm, read_pixels=read_images,
                                     rare_threshold=rare_threshold)
    extra: dict[str, Any] = {}
    balance = None
    if fold_info is not None:
        image_fold, unknown = fold_info
        balance = fold_balance(image_fold, totals.class_px, tables.ann_value, tables.ann_image, labels, unknown)
        tables.images["fold"] = image_fold
        tables.annotations["fold"] = [image_fold[i] for i in tables.ann_image.tolist()]
        extra["folds"] = {"file": str(folds), **balance.summary()}
    if skip_invalid:
        extra["left_out"] = {"images": in_file[0] - len(ds.images), "annotations": in_file[1] - len(ds.annotations)}
    meta_info = None
    if meta_table is not None and meta is not None and meta_key is not None:
        present = np.zeros((len(ds.images), len(cm)), dtype=bool)
        present[tables.ann_image, tables.ann_value - 1] = True
        meta_info = analyse_meta(meta, meta_table, meta_key, ds.images, totals.class_px, present)
        for col in meta_info.columns:
            tables.images[f"meta_{col.name}"] = col.values
        extra["meta"] = meta_info.summary()
    extra["lateral"] = lateral_summary(totals.sides, cm, ds.categories, labels)
    compared = compare_splits([SplitData(names[0], ds, cm, totals), *others]) if others else None
    if compared is not None:
        extra["compare"] = compared.summary()
    outliers = _outliers(tables) if read_images else []
    summary = build_summary(source={"annotations": str(ann_path), "images": str(root)}, tables=tables,
                            totals=totals, threshold=threshold, overlap=str(policy), read_pixels=read_images,
                            problems=_problems(issues + totals.issues), extra=extra)
    report_input = ReportInput(summary=summary, tables=tables, totals=totals, labels=labels, colors=colors,
                               issues=issues + totals.issues, dropped=len(ds.dropped), picks=picks,
                               outliers=outliers, balance=balance, meta=meta_info, compare=compared)
    clock.lap("tables")

    out_tables = {"images.parquet": tables.images, "annotations.parquet": tables.annotations,
                  "classes.parquet": tables.classes}
    if balance is not None:
        out_tables["fold_balance.parquet"] = balance.columns()
    if compared is not None:
        out_tables["leakage.parquet"] = compared.leakage_columns()
    thumbs = [jobs[i] for i in outliers if i not in totals.thumbnails]
    _write(Path(out), overwrite, out_tables, report_input, thumbs, cfg, workers, clock, warm[0] if warm else None)
    return EdaResult(Path(out), summary, clock.laps)

"""``run_clean``: the API behind ``datatools clean``.

Records are read and validated (broken records become findings instead of refusing the dataset), the images
are streamed once through :func:`datatools.clean.scan.scan_image` over the parallel map, the checks turn the
small per-image facts into findings, and ``findings.parquet``, ``summary.json``, ``report.html`` (and, with
``apply``, a cleaned dataset and ``removed.json``) are written into ``out`` at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datatools.clean.annotations import annotation_findings, validate_findings
from datatools.clean.apply import Applied, apply_findings
from datatools.clean.duplicates import OtherImages, against_findings, duplicate_findings, other_images
from datatools.clean.encoder_outliers import encoder_features, encoder_outlier_findings, knn_distances
from datatools.clean.findings import CHECKS, DEFAULT_DROP, KINDS, Check, Finding, sort_findings, write_findings
from datatools.clean.label_issues import label_findings, probs_path
from datatools.clean.oof import check_ckpt_folds, out_of_fold_probs
from datatools.clean.outliers import outlier_findings
from datatools.clean.rules import AnnotationRules
from datatools.clean.scan import ImageFacts, ScanConfig, scan_image
from datatools.core.atomic import check_output_dir, output_dir
from datatools.core.classes import ClassMap
from datatools.core.coco import read_coco_json, write_coco_json
from datatools.core.dataset import ANNOTATIONS_FILE, IMAGES_DIR, resolve_input
from datatools.core.errors import DatatoolsError, InvalidDatasetError
from datatools.core.issues import Issue, Severity
from datatools.core.parallel import default_workers, parallel_imap
from datatools.core.paths import resolve_under
from datatools.core.validate import validate_records
from datatools.eda.stats import ImageJob
from datatools.eda.tables import write_parquet
from datatools.folds.phash import DEFAULT_MAX_DISTANCE

__all__ = ["CleanResult", "parse_checks", "parse_drop", "run_clean"]


@dataclass(frozen=True)
class CleanResult:
    """Where the outputs went and what was found.

    Attributes:
        out: the output folder.
        findings: every finding, in report order.
        summary: the content of ``summary.json``.
        applied: the cleaned dataset and what changed (``apply`` only).
        timings: seconds per phase (records, scan, checks, write), for benchmarks.
    """

    out: Path
    findings: list[Finding] = field(repr=False)
    summary: dict[str, Any] = field(repr=False)
    applied: Applied | None = field(default=None, repr=False)
    timings: dict[str, float] = field(default_factory=dict, repr=False)


def parse_checks(checks: str | Iterable[str | Check] | None, probs: object) -> tuple[Check, ...]:
    """The checks to run: all of them by default (``labels`` only with probabilities).

    Raises:
        DatatoolsError: an unknown check, or ``labels`` without probabilities.
    """
    if checks is None:
        return tuple(c for c in CHECKS if c is not Check.LABELS or probs is not None)
    names = checks.split(",") if isinstance(checks, str) else list(checks)
    out = []
    for name in names:
        try:
            out.append(Check(str(getattr(name, "value", name)).strip()))
        except ValueError:
            raise DatatoolsError(f"--checks: unknown check {name!r}; choose from "
                                 f"{', '.join(c.value for c in CHECKS)}") from None
    if Check.LABELS in out and probs is None:
        raise DatatoolsError("--checks labels needs --probs DIR or --ckpt ... --folds F (out-of-fold "
                             "probabilities)")
    return tuple(c for c in CHECKS if c in out)


def parse_drop(drop: str | Iterable[str] | None) -> tuple[str, ...]:
    """What ``apply`` acts on: kinds of :data:`KINDS` or finding codes (default :data:`DEFAULT_DROP`).

    Raises:
        DatatoolsError: a name that is no kind and no known code.
    """
    if drop is None:
        return DEFAULT_DROP
    names = [n.strip() for n in (drop.split(",") if isinstance(drop, str) else drop) if n.strip()]
    codes = {"same-pixels", "phash", "no-contrast", "empty-mask", "tiny", "sliver", "low-fill", "larger", "smaller",
             "encoder-knn"}
    unknown = [n for n in names if n not in KINDS and n not in codes]
    if unknown or not names:
        raise DatatoolsError(f"--drop: unknown kind {unknown[0] if unknown else ''!r}; choose from {', '.join(KINDS)}")
    return tuple(names)


def _usable(coco: dict[str, Any], issues: Sequence[Issue]) -> tuple[list[int], list[list[dict[str, Any]]]]:
    """Positions of the images that can be scanned, and each one's annotations that can be rasterised."""
    bad = {(i.section, i.index) for i in issues if i.severity is Severity.ERROR and i.index is not None}
    positions = [k for k in range(len(coco["images"])) if ("images", k) not in bad]
    first: dict[Any, int] = {}
    for k in positions:
        first.setdefault(coco["images"][k]["id"], k)
    by_image: dict[int, list[dict[str, Any]]] = {k: [] for k in positions}
    for k, ann in enumerate(coco["annotations"]):
        if ("annotations", k) not in bad and ann.get("image_id") in first:
            by_image[first[ann["image_id"]]].append(ann)
    return positions, [by_image[k] for k in positions]


def _slim(ann: dict[str, Any]) -> dict[str, Any]:
    return {k: ann[k] for k in ("id", "category_id", "segmentation", "iscrowd") if k in ann}


def _remap(found: list[Finding], positions: Sequence[int]) -> list[Finding]:
    return [dataclasses.replace(f, image_index=positions[f.image_index]) for f in found]


def _summary(ann: Path, root: Path, coco: dict[str, Any], checks: Sequence[Check], found: Sequence[Finding],
             settings: dict[str, Any], applied: Applied | None) -> dict[str, Any]:
    kinds = Counter(f.kind for f in found)
    summary: dict[str, Any] = {
        "source": {"annotations": str(ann), "images": str(root)},
        "images": len(coco["images"]), "annotations": len(coco["annotations"]),
        "checks": [c.value for c in checks], "settings": settings,
        "findings": len(found),
        "by_kind": {k: kinds[k] for k in KINDS if kinds[k]},
        "by_severity": {s.value: sum(f.severity is s for f in found) for s in Severity},
        "images_with_findings": len({f.image_index for f in found if f.image_index >= 0}),
    }
    if applied is not None:
        actions = Counter((r["record"], r["action"]) for r in applied.removed)
        summary["applied"] = {"images": len(applied.coco["images"]), "annotations": len(applied.coco["annotations"]),
                              "images_dropped": actions[("image", "dropped")],
                              "annotations_dropped": actions[("annotation", "dropped")],
                              "annotations_ignored": actions[("annotation", "ignored")]}
    return summary


def run_clean(
    ann: str | os.PathLike[str] | None = None,
    images: str | os.PathLike[str] | None = None,
    data: str | os.PathLike[str] | None = None,
    *,
    out: str | os.PathLike[str],
    checks: str | Iterable[str | Check] | None = None,
    against: Sequence[str | os.PathLike[str]] = (),
    probs: str | os.PathLike[str] | None = None,
    ckpt: Sequence[str | os.PathLike[str]] = (),
    folds: str | os.PathLike[str] | None = None,
    device: str = "auto",
    apply: bool = False,
    drop: str | Iterable[str] | None = None,
    as_ignore: bool = False,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    rules: AnnotationRules | None = None,
    label_threshold: float = 0.5,
    gallery: int = 12,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> CleanResult:
    """Find duplicates, outlier images, broken annotations and likely label errors; optionally write a cleaned
    dataset.

    Args:
        ann: COCO json (or use ``data``).
        images: image root.
        data: dataset folder written by datatools.
        out: output folder (``findings.parquet``, ``summary.json``, ``report.html``; ``dataset/`` and
            ``removed.json`` with ``apply``).
        checks: which checks (default: all; ``labels`` when ``probs`` is given).
        against: other datasets to look for copies of this one's images in (train/test leakage).
        probs: folder of out-of-fold probabilities, one file per image (see :mod:`datatools.clean.label_issues`).
        ckpt: one checkpoint per fold instead of ``probs``: checkpoint ``i`` predicts validation fold ``i`` of
            ``folds`` (needs the trainer, ``datatools[train]``). The first one's encoder features also give the
            ``outlier-feature`` findings (kNN distance), with or without ``folds``.
        folds: the folds table the checkpoints were trained on.
        device: torch device for ``ckpt`` (auto, cpu, cuda).
        apply: write the cleaned dataset into ``out/dataset``.
        drop: kinds (or codes) of findings ``apply`` acts on (default: exact duplicates, invalid images and
            annotations).
        as_ignore: turn flagged annotations into ignore regions instead of deleting them.
        max_distance: largest pHash distance of near duplicates (of 64 bits; -1: exact only).
        rules: thresholds of the annotation checks.
        label_threshold: annotations whose label quality is below it are findings.
        gallery: overlays shown per kind in the report.
        overwrite: replace a non-empty ``out``.
        workers: processes for the image pass (default: all cores).
        progress: show progress bars.

    Returns:
        The findings, summary and, with ``apply``, the cleaned dataset's records.

    Raises:
        DatatoolsError: bad options or unusable input (categories broken, probabilities missing); nothing is
            written.

    Example:
        >>> result = run_clean("train.json", "images/", out="clean/", against=["test/"], apply=True)
        >>> result.summary["by_kind"]
        {'duplicate-exact': 3, 'outlier-image': 2}
    """
    laps: dict[str, float] = {}
    clock = time.perf_counter()
    if ckpt and probs is not None:
        raise DatatoolsError("give --probs or --ckpt, not both")
    if folds is not None and not ckpt:
        raise DatatoolsError("--folds goes with --ckpt (one checkpoint per fold)")
    check_list = parse_checks(checks, probs if probs is not None else (list(ckpt) if folds is not None else None))
    for path in ckpt:
        if not Path(path).is_file():
            raise DatatoolsError(f"{path}: checkpoint not found")
    drop_list = parse_drop(drop)
    rules = rules or AnnotationRules()
    if as_ignore and not apply:
        raise DatatoolsError("--as-ignore goes with --apply")
    if not 0.0 < label_threshold <= 1.0:
        raise DatatoolsError(f"--label-threshold must be in (0, 1], got {label_threshold}")
    if probs is not None and not Path(probs).is_dir():
        raise DatatoolsError(f"{probs}: --probs folder not found")
    others = [other_images(a) for a in against]
    check_output_dir(out, overwrite)
    ann_path, root = resolve_input(ann, images, data)
    if not root.is_dir():
        raise InvalidDatasetError(f"{root}: image folder not found")
    coco = read_coco_json(ann_path)
    issues = validate_records(coco, str(ann_path))
    broken_cats = [i for i in issues if i.severity is Severity.ERROR and i.section in ("categories", "file")]
    if broken_cats:
        raise InvalidDatasetError(f"{broken_cats[0].file}: {broken_cats[0].message}; clean needs a usable category "
                                  "list (fix it first, see `datatools validate`)")
    cm = ClassMap.from_categories(coco["categories"])
    labels = cm.display_names()
    positions, anns = _usable(coco, issues)
    recs = [coco["images"][k] for k in positions]
    fold_of = check_ckpt_folds(ckpt, folds, recs) if ckpt and Check.LABELS in check_list else None
    if Check.LABELS in check_list and probs is not None:
        missing = [r["file_name"] for r in recs if probs_path(probs, str(r["file_name"])) is None]
        if missing:
            raise InvalidDatasetError(f"{probs}: no probability file for image {missing[0]!r}"
                                      + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else "")
                                      + "; expected <file_name stem>.npy or .npz")
    probs_label: Any = None if probs is None else str(probs)
    with contextlib.ExitStack() as stack:
        if fold_of is not None:
            probs_label = {"ckpt": [str(c) for c in ckpt], "folds": str(folds)}
            Path(out).absolute().parent.mkdir(parents=True, exist_ok=True)  # the scratch folder sits next to out
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix=".clean-oof.",
                                                                        dir=Path(out).absolute().parent)))
            probs = out_of_fold_probs(ckpt, fold_of, recs, root, work, device=device, progress=progress)
        return _run(ann_path, root, coco, issues, cm, labels, positions, anns, recs, check_list, others, probs,
                    probs_label, str(ckpt[0]) if ckpt else None, device, out=out, apply=apply, drop_list=drop_list,
                    as_ignore=as_ignore, max_distance=max_distance, rules=rules, label_threshold=label_threshold,
                    gallery=gallery, overwrite=overwrite, workers=workers, progress=progress, laps=laps, clock=clock)


def _run(ann_path: Path, root: Path, coco: dict[str, Any], issues: list[Issue], cm: ClassMap, labels: list[str],
         positions: list[int], anns: list[list[dict[str, Any]]], recs: list[dict[str, Any]],
         check_list: tuple[Check, ...], others: list[OtherImages], probs: str | os.PathLike[str] | None,
         probs_label: Any, feature_ckpt: str | None, device: str, *,
         out: str | os.PathLike[str], apply: bool, drop_list: tuple[str, ...], as_ignore: bool, max_distance: int,
         rules: AnnotationRules, label_threshold: float, gallery: int, overwrite: bool, workers: int | None,
         progress: bool, laps: dict[str, float], clock: float) -> CleanResult:
    """The pass, the checks and the writing, once the inputs are known to be usable."""
    from datatools.clean.report import render_clean_report, render_thumbnails

    read_pixels = Check.DUPLICATES in check_list or Check.OUTLIERS in check_list
    cfg = ScanConfig(str(root), cm, read_pixels=read_pixels, iou=rules.iou,
                     probs=str(probs) if Check.LABELS in check_list and probs is not None else None)
    jobs = [ImageJob(k, r["id"], r["file_name"], r["height"], r["width"], [_slim(a) for a in a_list],
                     (r.get("datatools") or {}).get("ignore", []))
            for k, r, a_list in zip(positions, recs, anns, strict=True)]
    laps["records"] = time.perf_counter() - clock
    n_workers = max(1, default_workers() if workers is None else workers)
    # as eda's pass: small batches so no worker idles at the end, and OpenCV's own threads off while the processes
    # fill the cores (forked workers inherit it; restored afterwards)
    chunk = max(1, min(16, len(jobs) // (n_workers * 32)))
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        facts: list[ImageFacts] = list(parallel_imap(partial(scan_image, cfg=cfg), jobs, workers=workers,
                                                     desc="clean: images", progress=progress, chunksize=chunk))
    finally:
        cv2.setNumThreads(cv_threads)
    laps["scan"] = time.perf_counter() - clock - sum(laps.values())

    file_issues = [f.issue for f in facts if f.issue is not None]
    found = validate_findings(issues + file_issues, coco, {r["id"]: k for k, r in zip(positions, recs, strict=True)})
    bad_files = {f.index for f in facts if f.issue is not None}
    ok = [i for i, f in enumerate(facts) if f.index not in bad_files]
    ok_recs = [recs[i] for i in ok]
    ok_pos = [positions[i] for i in ok]
    ok_facts = [facts[i] for i in ok]
    ok_anns = [anns[i] for i in ok]
    table: dict[str, Any] = {"image_id": [r["id"] for r in ok_recs], "file_name": [r["file_name"] for r in ok_recs]}
    if Check.DUPLICATES in check_list:
        digests = [f.digest for f in ok_facts]
        hashes = np.array([f.phash or (0,) * 8 for f in ok_facts], dtype=np.uint64).reshape(len(ok_facts), 8)
        counts = [len(a) for a in ok_anns]
        found += _remap(duplicate_findings(ok_recs, digests, hashes, counts, max_distance), ok_pos)
        for other in others:
            found += _remap(against_findings(ok_recs, digests, hashes, other, max_distance, workers=workers,
                                             progress=progress), ok_pos)
    if Check.OUTLIERS in check_list:
        outliers, columns = outlier_findings(ok_recs, ok_facts)
        found += _remap(outliers, ok_pos)
        table.update(columns)
        if feature_ckpt is not None:
            features = encoder_features(feature_ckpt, [resolve_under(root, str(r["file_name"])) for r in ok_recs],
                                        device=device, workers=workers, progress=progress)
            table["knn_distance"] = knn_distances(features)
            found += _remap(encoder_outlier_findings(ok_recs, table["knn_distance"]), ok_pos)
    if Check.ANNOTATIONS in check_list:
        found += _remap(annotation_findings(ok_recs, ok_anns, ok_facts, cm, labels, rules), ok_pos)
    scores = None
    if Check.LABELS in check_list:
        label_found, scores = label_findings(ok_recs, ok_anns, [f.labels for f in ok_facts], labels, cm,
                                             label_threshold)
        found += _remap(label_found, ok_pos)
    found = sort_findings(found)
    applied = apply_findings(coco, found, drop_list, as_ignore) if apply else None
    settings = {"max_distance": max_distance, "iou": rules.iou, "min_area": rules.min_area,
                "min_thickness": rules.min_thickness, "min_fill": rules.min_fill,
                "label_threshold": label_threshold, "against": [o.label for o in others],
                "probs": probs_label, "features": feature_ckpt if Check.OUTLIERS in check_list else None,
                "drop": list(drop_list) if apply else None, "as_ignore": as_ignore}
    summary = _summary(ann_path, root, coco, check_list, found, settings, applied)
    laps["checks"] = time.perf_counter() - clock - sum(laps.values())

    usable = dict(zip(ok_pos, ok_anns, strict=True))
    thumbs = render_thumbnails(coco, found, usable, cm, str(root), gallery, workers) if gallery else {}
    with output_dir(out, overwrite) as tmp:
        write_findings(tmp / "findings.parquet", found)
        write_parquet(tmp / "images.parquet", table)
        if scores is not None:
            write_parquet(tmp / "label_scores.parquet", scores)
        (tmp / "summary.json").write_text(json.dumps(summary, ensure_ascii=False, indent=1, allow_nan=False) + "\n",
                                          encoding="utf-8")
        (tmp / "report.html").write_text(render_clean_report(summary, found, thumbs, gallery), encoding="utf-8")
        if applied is not None:
            _write_dataset(tmp, coco, applied, root)
    laps["write"] = time.perf_counter() - clock - sum(laps.values())
    return CleanResult(Path(out), found, summary, applied, {k: round(v, 4) for k, v in laps.items()})


def _write_dataset(tmp: Path, coco: dict[str, Any], applied: Applied, root: Path) -> None:
    folder = tmp / "dataset"
    for k in applied.kept_images:
        name = str(coco["images"][k]["file_name"])
        dst = folder / IMAGES_DIR / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(resolve_under(root, name), dst)
    (folder / IMAGES_DIR).mkdir(parents=True, exist_ok=True)
    write_coco_json(folder / ANNOTATIONS_FILE, applied.coco)
    text = json.dumps(applied.removed, ensure_ascii=False, indent=1, allow_nan=False)
    (tmp / "removed.json").write_text(text + "\n", encoding="utf-8")

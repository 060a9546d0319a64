"""``pseudo_label``: predictions of unlabelled images become a new dataset of confident labels and ignore regions."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from datatools.core.atomic import atomic_write_text, check_output_dir
from datatools.core.classes import display_names
from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError, InvalidDatasetError

from .rule import RuleConfig
from .sources.base import MULTICLASS, Decision, Source, Target
from .writer import DatasetWriter, ImageLabels

__all__ = ["PseudoResult", "pseudo_label", "targets_from_dataset", "targets_from_folder"]

_HIST_EDGES = [round(k / 10, 1) for k in range(11)]


@dataclass(frozen=True)
class PseudoResult:
    """What a run wrote.

    Attributes:
        out: the dataset folder.
        images: images written with pseudo labels.
        skipped: file names skipped by ``min_confident``.
        summary: the content of ``summary.json``.
    """

    out: Path
    images: int
    skipped: list[str]
    summary: dict[str, Any]


def targets_from_dataset(dataset: Dataset) -> list[Target]:
    """The images of a dataset (its annotations are not used)."""
    return [Target(dict(img), dataset.image_path(img)) for img in dataset.images]


def targets_from_folder(folder: str | os.PathLike[str]) -> list[Target]:
    """Every image under ``folder`` (sorted by relative path; sizes from the headers); ids are given on write.

    Raises:
        InvalidDatasetError: the folder is missing or holds no image.
    """
    from datatools_train.ensemble import items_from_folder

    return [Target({"id": None, "file_name": it.file_name, "height": it.height, "width": it.width}, it.path)
            for it in items_from_folder(folder)]


def _rule_params(rule: RuleConfig, source: Source) -> dict[str, Any]:
    params: dict[str, Any] = {"threshold": rule.threshold, "class_thresholds": dict(rule.class_thresholds),
                              "min_area": rule.min_area, "min_confident": rule.min_confident}
    if source.mode == "instances":
        params["uncertain"] = rule.uncertain
    return params


class _Tally:
    """Per-class pixel counts and per-image confident shares, for ``summary.json`` (classes by display label)."""

    def __init__(self, labels: list[str]) -> None:
        self.labels = labels
        self.pixels = [[0, 0] for _ in labels]
        self.shares: list[float] = []
        self.total = 0

    def add(self, labels: ImageLabels, size_hw: tuple[int, int], written: bool) -> None:
        """Every image's confident share; the class pixels of the written images only."""
        self.shares.append(labels.confident_share)
        if not written:
            return
        for k, (predicted, labelled) in enumerate(labels.class_pixels):
            self.pixels[k][0] += predicted
            self.pixels[k][1] += labelled
        self.total += size_hw[0] * size_hw[1]

    def summary(self, labelled_set: list[float] | None) -> dict[str, Any]:
        classes = {}
        for k, (label, (p, n)) in enumerate(zip(self.labels, self.pixels, strict=True)):
            classes[label] = {"predicted_pixels": p, "labelled_pixels": n,
                              "confident_share": round(n / p, 6) if p else None,
                              "pixel_share": round(n / self.total, 6) if self.total else None}
            if labelled_set is not None:
                classes[label]["labelled_set_share"] = round(labelled_set[k], 6)
        shares = np.asarray(self.shares, dtype=np.float64)
        counts = np.histogram(shares, bins=_HIST_EDGES)[0].tolist() if shares.size else []
        dist = {"mean": round(float(shares.mean()), 6), "min": round(float(shares.min()), 6),
                "median": round(float(np.median(shares)), 6), "histogram": {"edges": _HIST_EDGES, "counts": counts}
                } if shares.size else {}
        return {"classes": classes, "confident_share": dist}


def _class_labels(source: Source, category_ids: tuple[int, ...]) -> list[str]:
    """Display labels of the output channels (a name shared by two classes gets its id)."""
    if source.mode == MULTICLASS:
        return display_names([(None, source.names[0]), *zip(category_ids, source.names[1:], strict=True)])
    return display_names(zip(category_ids, source.names, strict=True))


def _labelled_set(merge_with: Dataset, mode: str, workers: int | None, progress: bool) -> list[float]:
    """The merged labelled set's pixel share of each output channel."""
    from .report import labelled_pixel_shares  # the report pulls in eda's HTML: imported when a report is made

    shares = labelled_pixel_shares(merge_with.coco, merge_with.class_map(), workers=workers, progress=progress)
    return shares if mode == MULTICLASS else shares[1:]


def _write_report(writer: DatasetWriter, summary: dict[str, Any], workers: int | None) -> None:
    """``report.html`` into the staging folder: the gallery shows pseudo-labelled images only."""
    from .report import pick_overlays, render_overlays, render_pseudo_report

    first = len(writer.coco["images"]) - writer.added
    shares = [float(img["datatools"]["confident_share"]) for img in writer.coco["images"][first:]]
    positions = [first + i for i in pick_overlays(shares)]
    jpegs = render_overlays(writer.tmp, writer.coco, positions, workers=workers)
    overlays = [(str(writer.coco["images"][p]["file_name"]), shares[p - first], j)
                for p, j in zip(positions, jpegs, strict=True)]
    atomic_write_text(writer.tmp / "report.html", render_pseudo_report(summary, overlays))


def pseudo_label(
    source: Source,
    out: str | os.PathLike[str],
    *,
    dataset: Dataset | None = None,
    images: str | os.PathLike[str] | None = None,
    rule: RuleConfig | None = None,
    merge_with: Dataset | None = None,
    link: bool = False,
    workers: int | None = None,
    seed: int = 0,
    overwrite: bool = False,
    progress: bool = True,
) -> PseudoResult:
    """Pseudo-label images: confident predicted pixels become annotations, the others ignore regions.

    Writes a new dataset folder: ``images/`` (copied, or hard-linked with ``link``), ``annotations.json`` (one RLE
    annotation per connected component and class, the ignore region as RLE in ``images[].datatools.ignore``,
    provenance per image), ``summary.json`` and ``report.html`` (its numbers, and a gallery with the ignore region
    shown). Everything is checked before any work; the folder appears
    complete or not at all.

    Args:
        source: :class:`~datatools.pseudo.sources.CheckpointSource`, ``ProbabilitySource`` or ``ResultsSource``.
        out: output folder.
        dataset: the images as a COCO dataset (its annotations are not used; ids and categories are kept).
        images: or a bare image folder (categories come from the predictions); results files need ``dataset``.
        rule: thresholds (default :class:`RuleConfig`).
        merge_with: a labelled dataset written first, the pseudo-labelled images after it under ``pseudo/``
            with new ids (so ``train fit --data`` alone trains on both).
        link: hard-link images instead of copying them (copies when linking fails).
        workers: processes for per-image work with saved probabilities and results files (a checkpoint source
            takes its DataLoader workers when it is built).
        seed: recorded in the provenance (the rule draws nothing at random).
        overwrite: replace a non-empty ``out``.
        progress: progress bars on a terminal.

    Raises:
        DatatoolsError: bad thresholds, classes that differ from the dataset's, predictions for other images or
            of other sizes, an existing ``out``; nothing is written.

    Example:
        >>> src = ProbabilitySource(["pred_a/", "pred_b/"])
        >>> pseudo_label(src, "pseudo/", images="unlabelled/", rule=RuleConfig(threshold=0.9, min_area=64))
    """
    rule = rule or RuleConfig()
    if (dataset is None) == (images is None):
        raise DatatoolsError("give the images to label: --images DIR, --ann F --images DIR, or --data DIR")
    if dataset is None and source.mode == "instances":
        raise DatatoolsError("--predictions needs the COCO dataset its image ids refer to (--ann/--images or --data)")
    if source.mode == "instances" and rule.uncertain > rule.threshold:
        raise DatatoolsError(f"--uncertain: {rule.uncertain} must lie in (0, --threshold {rule.threshold}]")
    check_output_dir(out, overwrite)
    targets = targets_from_dataset(dataset) if dataset is not None else targets_from_folder(images)  # type: ignore
    if not targets:
        raise InvalidDatasetError(f"{dataset.source if dataset else images}: no images to pseudo-label")
    categories = dataset.categories if dataset is not None else [{"id": i, "name": n} for i, n in source.classes()]
    source.check(targets, categories if dataset is not None else None, dataset.source if dataset else images)
    if merge_with is not None:
        want = [(c["id"], c["name"]) for c in categories]
        got = [(c["id"], c["name"]) for c in merge_with.categories]
        if got != want:
            raise InvalidDatasetError(f"{merge_with.source}: --merge-with categories {got} differ from the pseudo "
                                      f"labels' {want}")
    names = source.names
    category_ids = tuple(int(str(c["id"])) for c in categories)
    decision = Decision(source.mode, names, rule.per_channel(names), category_ids, rule.min_area)
    origin = source.provenance()
    params = {"predictions": origin, **_rule_params(rule, source)}
    tally = _Tally(_class_labels(source, category_ids))
    labelled_set = _labelled_set(merge_with, source.mode, workers, progress) if merge_with is not None else None
    skipped: list[str] = []
    coco_extra = {k: v for k, v in dataset.coco.items() if k not in ("images", "annotations", "categories")} \
        if dataset is not None else {}
    with DatasetWriter(out, [dict(c) for c in categories], overwrite=overwrite, link=link, merge_with=merge_with,
                       coco_extra=coco_extra) as writer:
        stream = source.labels(targets, decision, rule, workers=workers, progress=progress)
        for target, labels in zip(targets, stream, strict=True):
            written = labels.confident_share >= rule.min_confident
            tally.add(labels, target.size_hw, written)
            if not written:
                skipped.append(target.file_name)
                continue
            image_params = {**params, "files": labels.files} if labels.files else params
            writer.add(target.record, target.path, labels, {
                "op": "pseudo-label", "sources": [target.file_name], "seed": seed, "params": image_params,
                "confident_share": round(labels.confident_share, 6)})
        summary = {"images": len(targets), "written": writer.added, "skipped": skipped, "source": origin,
                   "rule": _rule_params(rule, source), "merged_with": str(merge_with.source) if merge_with else None,
                   **tally.summary(labelled_set)}
        writer.finish(summary)
        _write_report(writer, summary, workers)
    return PseudoResult(Path(out), writer.added, skipped, summary)

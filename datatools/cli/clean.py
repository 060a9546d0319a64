"""``datatools clean``: duplicates, outlier images, annotation problems and label issues; a cleaned dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.clean.findings import DEFAULT_DROP
from datatools.clean.rules import AnnotationRules
from datatools.cli._common import (
    AnnOpt,
    DataOpt,
    EngineOpt,
    ImagesOpt,
    OutOpt,
    OverwriteOpt,
    ProgressOpt,
    RetriesOpt,
    SchedulerOpt,
    WorkersOpt,
    handle_errors,
)
from datatools.core.engine import DEFAULT_RETRIES, Engine
from datatools.folds.phash import DEFAULT_MAX_DISTANCE

_RULES = AnnotationRules()


@handle_errors
def clean(
    out: OutOpt,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    checks: Annotated[str | None, typer.Option("--checks", help="Comma-separated checks: duplicates, outliers, "
                                               "annotations, labels (default: all; labels only with --probs).",
                                               show_default=False)] = None,
    against: Annotated[list[Path] | None, typer.Option("--against", help="Another dataset (datatools folder, COCO "
                                                       "json or image folder) to find copies of this one's images "
                                                       "in (train/test leakage); repeatable.",
                                                       show_default=False)] = None,
    probs: Annotated[Path | None, typer.Option("--probs", help="Folder of out-of-fold probabilities, one "
                                               "<file_name stem>.npy (K+1, H, W) or .npz (train predict "
                                               "--save-probs) per image: adds the labels check.",
                                               show_default=False)] = None,
    ckpt: Annotated[list[Path] | None, typer.Option("--ckpt", help="Checkpoint: with --folds, one per fold in fold "
                                                    "order, predicting its validation fold (instead of --probs); "
                                                    "the first one's encoder features flag outlier images.",
                                                    show_default=False)] = None,
    folds: Annotated[Path | None, typer.Option("--folds", help="The folds table the --ckpt checkpoints were "
                                               "trained on (folds.parquet).", show_default=False)] = None,
    device: Annotated[str, typer.Option("--device", help="Torch device for --ckpt: auto, cpu, cuda or cuda:N.")
                      ] = "auto",
    apply: Annotated[bool, typer.Option("--apply", help="Write a cleaned dataset into OUT/dataset and list what "
                                        "changed in OUT/removed.json.")] = False,
    drop: Annotated[str | None, typer.Option("--drop", help="Comma-separated finding kinds (or codes) --apply acts "
                                             "on; the kinds are listed above.", show_default=",".join(DEFAULT_DROP))]
    = None,
    as_ignore: Annotated[bool, typer.Option("--as-ignore", help="With --apply: turn flagged annotations into "
                                            "ignore regions (images[].datatools.ignore) instead of deleting them.")
                         ] = False,
    max_distance: Annotated[int, typer.Option("--max-distance", min=-1, max=64, help="Largest perceptual-hash "
                                              "distance (of 64 bits) of near duplicates; -1: exact only.")
                            ] = DEFAULT_MAX_DISTANCE,
    iou: Annotated[float, typer.Option("--iou", min=0.01, max=1.0, help="Mask IoU at or above which two "
                                       "annotations are the same object (double or conflicting).")] = _RULES.iou,
    min_area: Annotated[int, typer.Option("--min-area", min=0, help="Objects of fewer pixels are tiny.")
                        ] = _RULES.min_area,
    label_threshold: Annotated[float, typer.Option("--label-threshold", min=0.0, max=1.0, help="Annotations whose "
                                                   "label quality (mean probability of their class) is below it "
                                                   "are label issues.")] = 0.5,
    gallery: Annotated[int, typer.Option("--gallery", min=0, help="Overlays per kind in the report.")] = 12,
    workers: WorkersOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Find duplicates, outlier images, broken annotations and likely label errors; rank them in findings.parquet
    and report.html; with --apply, write a cleaned dataset.

    Finding kinds (for --drop): duplicate-exact, duplicate-near, leak-exact, leak-near, near-constant-image,
    outlier-image, outlier-feature, invalid-image, invalid-annotation, invalid-category, validate-warning,
    validate-info, degenerate, double-annotation, conflicting-label, size-outlier, label-issue, label-missing.

    Example:

        datatools clean --ann train.json --images data/ --out clean/ \\
            --against test/ --apply
    """
    from datatools.clean.api import run_clean

    rules = AnnotationRules(min_area=min_area, min_thickness=_RULES.min_thickness, min_fill=_RULES.min_fill, iou=iou)
    result = run_clean(ann, images, data, out=out, checks=checks, against=against or [], probs=probs, ckpt=ckpt or [],
                       folds=folds, device=device, apply=apply,
                       drop=drop, as_ignore=as_ignore, max_distance=max_distance, rules=rules,
                       label_threshold=label_threshold, gallery=gallery, overwrite=overwrite, workers=workers,
                       progress=progress)
    s = result.summary
    kinds = ", ".join(f"{k} {n}" for k, n in s["by_kind"].items()) or "nothing"
    typer.echo(f"wrote {result.out / 'report.html'}: {s['findings']} findings in {s['images_with_findings']} of "
               f"{s['images']} images ({kinds})")
    if result.applied is not None:
        a = s["applied"]
        typer.echo(f"cleaned dataset {result.out / 'dataset'}: {a['images']} images, {a['annotations']} annotations "
                   f"({a['images_dropped']} images and {a['annotations_dropped']} annotations dropped, "
                   f"{a['annotations_ignored']} annotations turned into ignore regions; see removed.json)")

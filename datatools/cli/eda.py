"""``datatools eda``: class balance, sizes, normalisation numbers, overlaps, spatial prior, problems, gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.cli._common import (
    AnnOpt,
    DataOpt,
    EngineOpt,
    ImagesOpt,
    OutOpt,
    OverlapOpt,
    OverwriteOpt,
    PartialFoldsOpt,
    ProgressOpt,
    RareThresholdOpt,
    RetriesOpt,
    SchedulerOpt,
    SkipInvalidOpt,
    WorkersOpt,
    handle_errors,
)
from datatools.core.engine import DEFAULT_RETRIES, Engine
from datatools.core.rarity import RARE_THRESHOLD


def _train_sizes(value: str | None) -> str | None:
    from datatools.eda.ceiling import parse_train_sizes

    if value is not None:
        try:
            parse_train_sizes(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
    return value


@handle_errors
def eda(
    out: OutOpt,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    folds: Annotated[Path | None, typer.Option("--folds", help="Folds table (folds.parquet): per-fold class "
                                               "balance.", show_default=False)] = None,
    partial_folds: PartialFoldsOpt = False,
    meta: Annotated[Path | None, typer.Option("--meta", help="Meta table (.csv or .xlsx), one row per image or "
                                              "subject.", show_default=False)] = None,
    meta_key: Annotated[str | None, typer.Option("--meta-key", help="Column of --meta naming the image (id, file "
                                                 "name, stem or folder).", show_default=False)] = None,
    overlap: OverlapOpt = "smaller-on-top",
    no_images: Annotated[bool, typer.Option("--no-images", help="Annotation-only report: do not read the images "
                                            "(no pixel statistics, no gallery); --images is then optional.")]
    = False,
    rare_threshold: RareThresholdOpt = RARE_THRESHOLD,
    gallery: Annotated[int, typer.Option("--gallery", min=0, help="Gallery images per class.")] = 4,
    compare: Annotated[list[str] | None, typer.Option("--compare", help="Another split, [NAME=]PATH: a COCO json, a "
                                                      "dataset folder or an images-only folder; repeatable.",
                                                      show_default=False)] = None,
    train_size: Annotated[str | None, typer.Option("--train-size", callback=_train_sizes, metavar="N[,M...]",
                                                   help="Resolution ceiling: per class IoU of the masks resized to "
                                                   "N and back as the trainer does.", show_default=False)] = None,
    skip_invalid: SkipInvalidOpt = False,
    workers: WorkersOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Write an EDA report (report.html), summary.json and images/annotations/classes parquet tables.

    Example:

        datatools eda --ann train.json --images data/ --out eda/ \\
            --folds folds.parquet --meta meta.xlsx --meta-key ID

        datatools eda --ann train/_annotations.coco.json --images train/ --out eda/ \\
            --compare valid/ --compare holdout=test/
    """
    from datatools.eda.api import run_eda
    from datatools.eda.compare import compare_lines
    from datatools.eda.lateral import lateral_lines

    ceiling = None
    if train_size is not None:
        from datatools.cli._common import open_dataset
        from datatools.core.atomic import check_output_dir
        from datatools.eda.ceiling import parse_train_sizes, resolution_ceiling

        check_output_dir(out, overwrite)
        root = images if images is not None or ann is None else ann.parent  # --no-images: no image is read
        ceiling = resolution_ceiling(open_dataset(ann, root, data, skip_invalid=skip_invalid, check_files=False,
                                                  progress=progress), parse_train_sizes(train_size),
                                     overlap=overlap, workers=workers, progress=progress)
    result = run_eda(ann, images, data, out=out, folds=folds, partial_folds=partial_folds, meta=meta,
                     meta_key=meta_key, overlap=overlap,
                     read_images=not no_images, rare_threshold=rare_threshold, gallery=gallery,
                     skip_invalid=skip_invalid, overwrite=overwrite, workers=workers, progress=progress,
                     compare=compare or ())
    if ceiling is not None:
        from datatools.eda.ceiling import write_ceiling

        write_ceiling(result.out, ceiling)
    s = result.summary
    typer.echo(f"wrote {result.report} ({s['images']} images, {s['annotations']} annotations, {s['classes']} "
               f"classes; {s['problems']['error']} errors, {s['problems']['warning']} warnings)")
    if s.get("normalize"):
        mean = ", ".join(f"{v:.4f}" for v in s["normalize"]["mean"])
        std = ", ".join(f"{v:.4f}" for v in s["normalize"]["std"])
        typer.echo(f"normalize: mean=({mean}) std=({std})")
    left = s.get("left_out")
    if left and (left["images"] or left["annotations"]):
        typer.echo(f"warning: --skip-invalid left out {left['images']} image(s) and {left['annotations']} "
                   f"annotation(s) with errors (the counts above are without them); the errors are listed under "
                   "Annotation problems in the report", err=True)
    for line in lateral_lines(s.get("lateral") or {"pairs": []}):
        typer.echo(line)
    for line in compare_lines(s.get("compare")):
        typer.echo(line)
    rare = s["rare"]
    absent = f"; absent (no image holds them): {', '.join(rare['absent'])}" if rare["absent"] else ""
    typer.echo(f"rare classes ({rare['rule']}): {', '.join(rare['classes']) or 'none'}{absent}")

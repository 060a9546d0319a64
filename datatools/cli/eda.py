"""``datatools eda``: class balance, sizes, normalisation numbers, overlaps, spatial prior, problems, gallery."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.cli._common import (
    AnnOpt,
    DataOpt,
    ImagesOpt,
    OutOpt,
    OverlapOpt,
    OverwriteOpt,
    ProgressOpt,
    SkipInvalidOpt,
    WorkersOpt,
    handle_errors,
)


@handle_errors
def eda(
    out: OutOpt,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    folds: Annotated[Path | None, typer.Option("--folds", help="Folds table (folds.parquet): per-fold class "
                                               "balance.", show_default=False)] = None,
    meta: Annotated[Path | None, typer.Option("--meta", help="Meta table (.csv or .xlsx), one row per image or "
                                              "subject.", show_default=False)] = None,
    meta_key: Annotated[str | None, typer.Option("--meta-key", help="Column of --meta naming the image (id, file "
                                                 "name, stem or folder).", show_default=False)] = None,
    overlap: OverlapOpt = "smaller-on-top",
    no_images: Annotated[bool, typer.Option("--no-images", help="Annotation-only report: do not read the images "
                                            "(no pixel statistics, no gallery); --images is then optional.")]
    = False,
    rare_threshold: Annotated[float | None, typer.Option("--rare-threshold", min=0.0, max=1.0, help="Share of "
                                                         "instances or labelled pixels under which a class is "
                                                         "rare.", show_default="1/(4K) for K classes with "
                                                         "instances")] = None,
    gallery: Annotated[int, typer.Option("--gallery", min=0, help="Gallery images per class.")] = 4,
    skip_invalid: SkipInvalidOpt = False,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Write an EDA report (report.html), summary.json and images/annotations/classes parquet tables.

    Example:

        datatools eda --ann train.json --images data/ --out eda/ \\
            --folds folds.parquet --meta meta.xlsx --meta-key ID
    """
    from datatools.eda.api import run_eda

    result = run_eda(ann, images, data, out=out, folds=folds, meta=meta, meta_key=meta_key, overlap=overlap,
                     read_images=not no_images, rare_threshold=rare_threshold, gallery=gallery,
                     skip_invalid=skip_invalid, overwrite=overwrite, workers=workers, progress=progress)
    s = result.summary
    typer.echo(f"wrote {result.report} ({s['images']} images, {s['annotations']} annotations, {s['classes']} "
               f"classes; {s['problems']['error']} errors, {s['problems']['warning']} warnings)")
    if s.get("normalize"):
        mean = ", ".join(f"{v:.4f}" for v in s["normalize"]["mean"])
        std = ", ".join(f"{v:.4f}" for v in s["normalize"]["std"])
        typer.echo(f"normalize: mean=({mean}) std=({std})")
    if s["problems"]["error"]:
        typer.echo(f"warning: {s['problems']['error']} record(s) or file(s) with errors were left out "
                   "(--skip-invalid); they are listed under Annotation problems in the report", err=True)
    if s["rare"]["classes"]:
        typer.echo(f"rare classes (below {100 * s['rare']['threshold']:.2f}%): {', '.join(s['rare']['classes'])}")

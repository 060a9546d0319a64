"""``datatools folds``: make class-stratified, group-aware k folds (``folds ...``), audit a split (``folds check``)."""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from datatools.cli._common import (
    AnnOpt,
    DataOpt,
    EngineOpt,
    ImagesOpt,
    OverwriteOpt,
    PartialFoldsOpt,
    ProgressOpt,
    RetriesOpt,
    SchedulerOpt,
    SeedOpt,
    SkipInvalidOpt,
    WorkersOpt,
    handle_errors,
    open_dataset,
    report_dropped,
)
from datatools.core.dataset import Dataset
from datatools.core.engine import DEFAULT_RETRIES, Engine
from datatools.folds.api import FoldConfig
from datatools.folds.labels import Stratify

if TYPE_CHECKING:
    from datatools.folds.check import CheckReport

# `datatools folds --ann F --k 5 --out D` runs the callback (it makes folds); `datatools folds check ...` runs the
# subcommand, before which the callback returns at once. Its docstring is the help of `datatools folds`.
app = typer.Typer(invoke_without_command=True, no_args_is_help=True)

GroupByOpt = Annotated[
    list[str] | None,
    typer.Option("--group-by", help="Images that must stay together: folder | attr:NAME | meta:FILE:COLUMN | "
                 "regex:PATTERN | duplicates. Repeat to combine.", show_default=False),
]
DEFAULT_STRATIFY = Stratify(FoldConfig.stratify)
MaxDistanceOpt = Annotated[
    int, typer.Option("--max-distance", min=0, max=64,
                      help="Near-duplicates: largest perceptual-hash distance (bits of 64; flips/rotations included).")
]


def _load(ann: Path | None, images: Path | None, data: Path | None, skip_invalid: bool, workers: int | None,
          progress: bool) -> tuple[Dataset, bool]:
    """The dataset, and whether its image files are at hand (``--images`` or ``--data``)."""
    if ann is not None and images is None and data is None:  # records are enough to make folds
        ds = Dataset.load(ann, ann.parent, check_files=False, skip_invalid=skip_invalid)
        report_dropped(ds.dropped)
        return ds, False
    return open_dataset(ann, images, data, skip_invalid=skip_invalid, workers=workers, progress=progress), True


@app.callback()
@handle_errors
def folds(
    ctx: typer.Context,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder (must be empty or absent).",
                                             show_default=False)] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=2, help="Number of folds.")] = FoldConfig.k,
    seed: SeedOpt = FoldConfig.seed,
    stratify: Annotated[Stratify, typer.Option("--stratify", help="Balance per class the images holding it, its "
                                               "instances, or its pixels.")] = DEFAULT_STRATIFY,
    group_by: GroupByOpt = None,
    max_distance: MaxDistanceOpt = FoldConfig.max_distance,
    refine: Annotated[bool, typer.Option("--refine/--no-refine", help="Polish the iterative stratification by "
                                         "moving and swapping whole groups.")] = FoldConfig.refine,
    ignore_provenance: Annotated[bool, typer.Option("--ignore-provenance", help="Let images made by `datatools "
                                                    "augment` (images[].datatools.sources) land in another fold than "
                                                    "their sources (leaks; warns).")] = not FoldConfig.provenance,
    skip_invalid: SkipInvalidOpt = False,
    workers: WorkersOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Split a dataset into k class-stratified folds that never split a group.

    Writes folds.parquet (image_id, file_name, group, fold), train_fold{i}.json and val_fold{i}.json (COCO, every
    field kept), balance.csv and balance.png (per class and fold: share of images / instances / pixels and the
    deviation from the whole dataset) and summary.json. Pixels are annotation areas with --ann alone and
    rasterised masks when --images (or --data) is given. Every class held by at least k groups is in every
    validation fold; a warning names each class for which that cannot hold. Images made by `datatools augment`
    (images[].datatools.sources) stay in the fold of the images they were made from, transitively, unless
    --ignore-provenance.

    Example:

        datatools folds --ann train/_annotations.coco.json --k 5 --seed 42 \\
            --group-by 'regex:^(.*)_(jpg|jpeg|png)\\.rf\\.' \\
            --stratify presence --out folds/

        datatools folds check --folds folds/folds.parquet --images train/
    """
    if ctx.invoked_subcommand is not None:
        return
    if out is None:
        raise typer.BadParameter("--out is required to make folds", param_hint="--out")
    from datatools.folds.api import make_folds
    from datatools.folds.groups import GroupKind, GroupSpec
    from datatools.folds.labels import PixelSource

    try:
        specs = tuple(GroupSpec.parse(s) for s in group_by or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--group-by") from None
    if any(s.kind is GroupKind.DUPLICATES for s in specs) and ann is not None and images is None:
        raise typer.BadParameter("duplicates reads the images: give --images", param_hint="--group-by")
    ds, have_images = _load(ann, images, data, skip_invalid, workers, progress)
    config = FoldConfig(k=k, seed=seed, stratify=stratify, group_by=specs, max_distance=max_distance, refine=refine,
                        pixel_source=PixelSource.MASKS if have_images else PixelSource.AREA,
                        provenance=not ignore_provenance)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the result carries them; printed once below
        result = make_folds(ds, out, config, overwrite=overwrite, workers=workers, progress=progress)
    a = result.assignment
    for message in a.warnings:
        print(f"warning: {message}", file=sys.stderr)
    sizes = a.table["fold"].value_counts().reindex(range(k), fill_value=0).tolist()
    devs = ", ".join(f"{m}s {100 * result.balance[m + '_dev'].abs().max():.2f}"
                     for m in ("image", "instance", "pixel"))
    base = "rasterised masks" if have_images else "annotation areas"
    typer.echo(f"wrote {k} folds of {len(a.table)} images in {a.n_groups} groups to {result.out} "
               f"(validation images per fold: {'/'.join(map(str, sizes))})")
    typer.echo(f"largest class-share deviation of a validation fold, in points: {devs} (pixels: shares of the "
               f"labelled pixels, from {base})")
    if a.grouping is not None and (a.grouping.derived or not a.grouping.provenance):
        typer.echo(a.grouping.provenance_line())


def _print_report(report: CheckReport) -> None:
    for leak in report.leaks:
        typer.echo("leak " + leak.line())
    for line in report.coverage:
        typer.echo("coverage " + line)
    for note in report.notes:
        print(f"note: {note}", file=sys.stderr)
    found = ", ".join(f"{n} {kind}" for kind, n in report.counts.items() if n)
    verdict = f"LEAKS: {len(report.leaks)} pair(s) ({found})" if report.leaks else "no leakage found"
    typer.echo(f"checked {report.images} images in {report.parts} parts: {verdict}; "
               f"{len(report.coverage)} coverage gap(s)")


@app.command("check")
@handle_errors
def check(
    folds_file: Annotated[Path | None, typer.Option("--folds", help="A folds table (folds.parquet) to audit.",
                                                    show_default=False)] = None,
    train: Annotated[Path | None, typer.Option("--train", help="Training COCO file (with --val).",
                                               show_default=False)] = None,
    val: Annotated[Path | None, typer.Option("--val", help="Validation COCO file (with --train).",
                                             show_default=False)] = None,
    images: Annotated[Path | None, typer.Option("--images", help="Image root; enables the exact and "
                                                "near-duplicate checks.", show_default=False)] = None,
    val_images: Annotated[Path | None, typer.Option("--val-images", help="Image root of --val when it differs "
                                                    "from --images.", show_default=False)] = None,
    ann: AnnOpt = None,
    data: DataOpt = None,
    group_by: GroupByOpt = None,
    max_distance: MaxDistanceOpt = FoldConfig.max_distance,
    partial_folds: PartialFoldsOpt = False,
    workers: WorkersOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    progress: ProgressOpt = True,
) -> None:
    """Audit a split for group, exact-duplicate, provenance and near-duplicate leakage and class coverage; exit 1 on
    leakage.

    Give a folds table (--folds; its classes come from the val_fold{i}.json files beside it, or --ann/--data) or a
    pair of COCO files (--train and --val). Every leaking pair is listed.

    Example:

        datatools folds check --folds folds/folds.parquet --images train/

        datatools folds check --train train/_annotations.coco.json \\
            --val valid/_annotations.coco.json --images train/ \\
            --val-images valid/ --group-by 'regex:^(.*)_(jpg|jpeg|png)\\.rf\\.'
    """
    from datatools.core.errors import DatatoolsError
    from datatools.folds.check import check_folds, check_train_val
    from datatools.folds.groups import GroupKind, GroupSpec

    if (folds_file is None) == (train is None and val is None):
        raise DatatoolsError("give either --folds, or --train with --val")
    try:
        specs = [GroupSpec.parse(s) for s in group_by or ()]
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--group-by") from None
    if any(s.kind is GroupKind.DUPLICATES for s in specs):
        raise typer.BadParameter("duplicates is what the near-duplicate check does: give --images instead",
                                 param_hint="--group-by")
    if folds_file is not None:
        ds = None
        if data is not None:
            ds = Dataset.open(data=data, check_files=False)
            images = images or ds.image_root
        elif ann is not None:
            ds = Dataset.load(ann, images or ann.parent, check_files=False)
        report = check_folds(folds_file, ds, images=images, group_by=specs, max_distance=max_distance,
                             workers=workers, progress=progress, partial=partial_folds)
    else:
        if train is None or val is None:
            raise DatatoolsError("give both --train and --val")
        tr = Dataset.load(train, images or train.parent, check_files=False)
        va = Dataset.load(val, val_images or images or val.parent, check_files=False)
        report = check_train_val(tr, va, images=images is not None or val_images is not None, group_by=specs,
                                 max_distance=max_distance, workers=workers, progress=progress)
    _print_report(report)
    if not report.ok:
        raise typer.Exit(1)

"""``datatools train fit|evaluate|compare|predict|soup|export`` (also ``python -m datatools_train``).

Thin: parse options, call the API in ``train.engine``, ``train.evaluate``, ``train.predict``, ``train.soup``, print.
``fit`` lives in ``train.cli_fit``; ``compare`` and ``export`` (commands on finished runs' files, no dataset) in
``train.cli_runs``.
Importing this module does not import torch; each command imports what it needs when it runs.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from datatools.cli._common import (
    AnnOpt,
    CommandGroup,
    DataOpt,
    DeviceOpt,
    EngineOpt,
    ImagesOpt,
    MaskFormatOpt,
    OutOpt,
    OverwriteOpt,
    PartialFoldsOpt,
    ProgressOpt,
    RetriesOpt,
    SchedulerOpt,
    SkipInvalidOpt,
    SubmissionOpt,
    fail,
    handle_errors,
)
from datatools.core.engine import DEFAULT_RETRIES, Engine
from datatools.core.imageio import MaskFormat
from datatools.formats.submission_dir import SubmissionStyle

from .cli_data import open_data, split_folds, validation_set
from .cli_fit import fit_cmd
from .cli_runs import compare_cmd, export_cmd
from .config import TrainConfig
from .options import (
    BatchOpt,
    BlendOpt,
    CkptsOpt,
    CocoOpt,
    FoldOpt,
    FoldsOpt,
    LoaderOpt,
    MoreCkptsArg,
    OverlaysOpt,
    PredictImagesOpt,
    ProbsDtype,
    ProbsDtypeOpt,
    SaveProbsOpt,
    SlidingOpt,
    SubmissionSizeOpt,
    ThresholdsOpt,
    TtaOpt,
    ValAnnOpt,
    ValDataOpt,
    ValImagesOpt,
    VoteOpt,
    all_ckpts,
)
from .sliding import Blend, SlidingWindow

app = typer.Typer(cls=CommandGroup, no_args_is_help=True, help="Train, evaluate, compare, predict, soup and export "
                  "segmentation_models_pytorch models on datatools datasets.")

_D = TrainConfig()  # the one place defaults come from

app.command("fit")(fit_cmd)


@app.command("evaluate")
@handle_errors
def evaluate_cmd(
    ckpt: CkptsOpt,
    out: OutOpt,
    more: MoreCkptsArg = None,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    folds: FoldsOpt = None,
    fold: FoldOpt = 0,
    partial_folds: PartialFoldsOpt = False,
    tta: TtaOpt = None,
    vote: VoteOpt = False,
    sliding_window: SlidingOpt = None,
    blend: BlendOpt = Blend.GAUSSIAN,
    thresholds: ThresholdsOpt = None,
    worst: Annotated[int, typer.Option("--worst", min=0, help="Images in the gallery of the worst.")] = 8,
    errors: Annotated[bool, typer.Option("--errors/--no-errors", help="Error breakdown: errors.parquet, "
                                         "objects.parquet, error_breakdown.csv, report.html.")] = True,
    boundary_px: Annotated[int, typer.Option("--boundary-px", min=1, help="Boundary band width in pixels at "
                                             "512x512, scaled by the image diagonal.")] = 3,
    oof: Annotated[bool, typer.Option("--oof", help="Out of fold, with --folds: one --ckpt per fold, in fold "
                                      "order; each scores its fold's images.")] = False,
    batch: BatchOpt = _D.batch,
    workers: LoaderOpt = None,
    device: DeviceOpt = _D.device,
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Score checkpoints at full resolution: metrics, confusion matrix, error breakdown, report.html, galleries.

    --oof --folds F scores every image with the checkpoint of its fold (per-fold and pooled scores in folds.csv).

    Example:

        datatools train evaluate --ckpt runs/r34_f0/best.pt --data ds/ \\
            --folds folds.parquet --fold 0 --out eval_f0/
    """
    from .evaluate import evaluate
    from .thresholds import parse_thresholds

    ckpt = all_ckpts(ckpt, more)
    if oof and folds is None:
        raise fail("--oof needs --folds")
    ds = open_data(ann, images, data, skip_invalid, progress)
    fold_of = None
    if oof and folds is not None:
        from .evaluate import out_of_fold

        ds, fold_of = out_of_fold(folds, ds, partial_folds)
        val = None
    else:
        _, val = split_folds(ds, folds, fold, partial_folds)
    chosen = None
    if thresholds is not None:
        from .checkpoint import ModelSpec, load_checkpoint

        chosen = parse_thresholds(thresholds, ModelSpec.from_dict(load_checkpoint(ckpt[0])["spec"]).names)
    sliding = SlidingWindow.parse(sliding_window, blend, tile_batch=batch) if sliding_window else None
    result = evaluate(ckpt, val or ds, out, tta=tta, vote=vote, thresholds=chosen, worst=worst, batch=batch,
                      workers=workers, device=device, errors=errors, boundary_px=boundary_px, fold_of=fold_of,
                      sliding=sliding, overwrite=overwrite, progress=progress)
    typer.echo(result.table())
    s, b = result.scores, result.baseline
    absent = [n for n, a in zip(s.names, s.absent, strict=True) if a]
    typer.echo(f"{s.metric} {s.score:.4f} (foreground {s.foreground:.4f}); all-background baseline "
               f"{b.score:.4f}; written to {out}"
               + (f"\nabsent from the truth, left out of both means: {', '.join(absent)}" if absent else ""))


app.command("compare")(compare_cmd)


@app.command("predict")
@handle_errors
def predict_cmd(
    ckpt: CkptsOpt,
    out: OutOpt,
    more: MoreCkptsArg = None,
    ann: AnnOpt = None,
    images: PredictImagesOpt = None,
    data: DataOpt = None,
    tta: TtaOpt = None,
    vote: VoteOpt = False,
    sliding_window: SlidingOpt = None,
    blend: BlendOpt = Blend.GAUSSIAN,
    coco: CocoOpt = False,
    overlays: OverlaysOpt = False,
    save_probs: SaveProbsOpt = False,
    probs_dtype: ProbsDtypeOpt = ProbsDtype.UINT8,
    submission: SubmissionOpt = None,
    submission_size: SubmissionSizeOpt = 256,
    thresholds: ThresholdsOpt = None,
    mask_format: MaskFormatOpt = MaskFormat.PALETTE,
    val_ann: ValAnnOpt = None,
    val_images: ValImagesOpt = None,
    val_data: ValDataOpt = None,
    batch: BatchOpt = _D.batch,
    workers: LoaderOpt = None,
    device: DeviceOpt = _D.device,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Predict masks with one checkpoint or an ensemble, batched TTA, and a competition CSV.

    --save-probs writes probs/<file_name stem>.npz per image: 'probs' (C, S, S), the mean probabilities at the
    model's side S (multiclass: background first; multilabel: one per class; the order of classes.json), float16
    or uint8 = round(p * 255) (--probs-dtype), and 'shape_hw' (the image's height, width); resize bilinearly to
    the image. Read them with datatools_train.predict.load_probs.

    Example:

        datatools train predict --ckpt runs/a/best.pt --ckpt runs/b/best.pt \\
            --images test/ --tta hflip,vflip --submission class-ids --out pred/
    """
    from .ensemble import items_from_dataset, items_from_folder
    from .predict import predict

    ckpt = all_ckpts(ckpt, more)
    if ann is None and data is None:
        if images is None:
            raise fail("give --images DIR, --ann F --images DIR, or --data DIR")
        items = items_from_folder(images)
    else:
        items = items_from_dataset(open_data(ann, images, data, skip_invalid, progress))
    val = validation_set(val_ann, val_images, val_data, progress)
    sliding = SlidingWindow.parse(sliding_window, blend, tile_batch=batch) if sliding_window else None
    result = predict(ckpt, items, out, tta=tta, vote=vote, sliding=sliding, coco=coco, overlays=overlays,
                     save_probs=save_probs,
                     probs_dtype=probs_dtype,
                     submission=SubmissionStyle.parse(submission) if submission else None,
                     submission_size=submission_size, thresholds=thresholds, val=val, batch=batch, workers=workers,
                     device=device, mask_format=mask_format, overwrite=overwrite, progress=progress)
    typer.echo(f"wrote {result.images} masks to {out / 'ann_dir'}"
               + (f", submission {result.submission}" if result.submission else "")
               + (f"; thresholds {', '.join(f'{t:.2f}' for t in result.thresholds)}" if result.thresholds else ""))


@app.command("soup")
@handle_errors
def soup_cmd(
    ckpt: CkptsOpt,
    out: OutOpt,
    more: MoreCkptsArg = None,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    folds: FoldsOpt = None,
    fold: FoldOpt = 0,
    partial_folds: PartialFoldsOpt = False,
    greedy: Annotated[bool, typer.Option("--greedy", help="Also build the greedy soup.")] = False,
    batch: BatchOpt = _D.batch,
    workers: LoaderOpt = None,
    device: DeviceOpt = _D.device,
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Uniform (and greedy) model soups of checkpoints, scored on the validation fold.

    Example:

        datatools train soup --ckpt runs/*/best.pt --data ds/ \\
            --folds folds.parquet --fold 0 --greedy --out soup/
    """
    from .soup import soup

    ckpt = all_ckpts(ckpt, more)
    ds = open_data(ann, images, data, skip_invalid, progress)
    _, val = split_folds(ds, folds, fold, partial_folds)
    result = soup(ckpt, val or ds, out, greedy=greedy, batch=batch, workers=workers, device=device,
                  overwrite=overwrite, log=typer.echo)
    typer.echo(f"best: {result.best} in {out}")


app.command("export")(export_cmd)


def main() -> Any:
    return app()

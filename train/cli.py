"""``datatools train fit|evaluate|compare|predict|soup|export`` (also ``python -m datatools_train``).

Thin: parse options, call the API in ``train.engine``, ``train.evaluate``, ``train.predict``, ``train.soup``, print.
``compare`` and ``export`` (commands on finished runs' files, no dataset) live in ``train.cli_runs``.
Importing this module does not import torch; each command imports what it needs when it runs.
"""

from __future__ import annotations

from pathlib import Path
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
    OverlapOpt,
    OverwriteOpt,
    PartialFoldsOpt,
    ProgressOpt,
    RetriesOpt,
    SchedulerOpt,
    SeedOpt,
    SkipInvalidOpt,
    SubmissionOpt,
    fail,
    handle_errors,
    open_dataset,
    size_callback,
    with_option_names,
)
from datatools.core.dataset import Dataset
from datatools.core.engine import DEFAULT_RETRIES, Engine
from datatools.core.errors import DatatoolsError
from datatools.core.imageio import MaskFormat
from datatools.formats.submission_dir import SubmissionStyle

from .cli_runs import compare_cmd, export_cmd
from .config import LogKind, LossName, Mode, Optimizer, SamplerName, Scheduler, TrainConfig
from .options import (
    BatchOpt,
    BlendOpt,
    CkptsOpt,
    CocoOpt,
    FoldOpt,
    FoldsOpt,
    LoaderOpt,
    MoreCkptsArg,
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
    check_class_weights,
    check_normalize,
    check_patience,
    check_share,
    check_weights,
    square_side,
)
from .sliding import Blend, SlidingWindow

app = typer.Typer(cls=CommandGroup, no_args_is_help=True, help="Train, evaluate, compare, predict, soup and export "
                  "segmentation_models_pytorch models on datatools datasets.")

_D = TrainConfig()  # the one place defaults come from

def _dataset(ann: Path | None, images: Path | None, data: Path | None, skip_invalid: bool = False,
             progress: bool = True) -> Dataset:
    return open_dataset(ann, images, data, skip_invalid=skip_invalid, progress=progress)


def _split(ds: Dataset, folds: Path | None, fold: int, partial: bool = False) -> tuple[Dataset, Dataset | None]:
    """``(train, validation)`` from a folds table that belongs to ``ds``, or ``(ds, None)`` without one."""
    if folds is None:
        return ds, None
    from datatools.core.folds_table import fold_image_ids, read_folds_for

    train_ids, val_ids = fold_image_ids(read_folds_for(folds, ds, partial=partial), fold, folds)
    train, val = ds.subset(train_ids), ds.subset(val_ids)
    if not train.images or not val.images:
        raise DatatoolsError(f"{folds}: fold {fold} leaves {len(train.images)} training and {len(val.images)} "
                             f"validation images of {ds.source}")
    return train, val


def _validation(val_ann: Path | None, val_images: Path | None, val_data: Path | None,
                progress: bool) -> Dataset | None:
    if val_ann is None and val_images is None and val_data is None:
        return None
    return _dataset(val_ann, val_images, val_data, progress=progress)


@app.command("fit")
@handle_errors
def fit_cmd(
    out: OutOpt,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    folds: FoldsOpt = None,
    fold: FoldOpt = 0,
    partial_folds: PartialFoldsOpt = False,
    val_ann: ValAnnOpt = None,
    val_images: ValImagesOpt = None,
    val_data: ValDataOpt = None,
    extra: Annotated[list[Path] | None, typer.Option("--extra", help="Dataset folder added to training only "
                                                     "(repeatable), e.g. augmented data.", show_default=False)] = None,
    masks: Annotated[Path | None, typer.Option("--masks", help="Pre-rendered masks (datatools convert masks "
                                               "folder) of the training dataset.", show_default=False)] = None,
    arch: Annotated[str, typer.Option("--arch", help="smp architecture: Unet, UnetPlusPlus, DeepLabV3Plus, FPN, "
                                      "Segformer, UPerNet, ...")] = _D.arch,
    encoder: Annotated[str, typer.Option("--encoder", help="smp encoder: resnet18, resnet34, efficientnet-b0, "
                                         "tu-convnext_tiny, ...")] = _D.encoder,
    weights: Annotated[str, typer.Option("--weights", callback=check_weights, help="imagenet, none, or a weights file "
                                         "(encoder or whole model state dict).")] = _D.weights,
    size: Annotated[str, typer.Option("--size", callback=size_callback, metavar="N",
                                      help="Training side in pixels (a multiple of 32; images are resized to "
                                      "N x N).")] = str(_D.size),
    epochs: Annotated[int, typer.Option("--epochs", min=1)] = _D.epochs,
    batch: BatchOpt = _D.batch,
    lr: Annotated[float, typer.Option("--lr", help="Peak learning rate.")] = _D.lr,
    weight_decay: Annotated[float, typer.Option("--weight-decay")] = _D.weight_decay,
    optimizer: Annotated[Optimizer, typer.Option("--optimizer")] = _D.optimizer,
    scheduler: Annotated[Scheduler, typer.Option("--scheduler")] = _D.scheduler,
    warmup: Annotated[float, typer.Option("--warmup", help="Share of the steps spent warming up.")] = _D.warmup,
    loss: Annotated[LossName, typer.Option("--loss", metavar="LOSS", help="ce, dice, focal, lovasz, ce+dice or "
                                           "focal+dice.")] = _D.loss,
    mode: Annotated[Mode, typer.Option("--mode", help="auto picks multilabel when classes overlap heavily.")]
    = _D.mode,
    overlap: OverlapOpt = _D.overlap,
    aug: Annotated[Path | None, typer.Option("--aug", help="Albumentations pipeline YAML.",
                                             show_default="flips, affine, brightness/contrast")] = None,
    lateral_pairs: Annotated[str, typer.Option("--lateral-pairs", help="Classes a flip swaps: auto (from names "
                                               "like left_x/right_x), none, or LEFT=RIGHT,TOP=BOTTOM; kept in the "
                                               "checkpoint.")]
    = _D.lateral_pairs,
    normalize: Annotated[str, typer.Option("--normalize", callback=check_normalize, help="Input mean/std: imagenet, "
                                           "dataset, or MEAN,STD (0..1); kept in the checkpoint.",
                                           show_default="auto: imagenet, dataset if --weights none")]
    = _D.normalize,
    stats: Annotated[Path | None, typer.Option("--stats", exists=True, dir_okay=False, help="eda summary.json "
                                               "whose mean/std --normalize dataset takes (else one pass).",
                                               show_default=False)] = None,
    sampler: Annotated[SamplerName, typer.Option("--sampler", help="repeat-factor: draw images holding rare "
                                                 "classes more often (LVIS).")] = _D.sampler,
    repeat_threshold: Annotated[float | None, typer.Option("--repeat-threshold", callback=check_share,
                                                           help="Image share under which a class is repeated.",
                                                           show_default="0.8 x top share")] = None,
    class_weights: Annotated[str | None, typer.Option("--class-weights", callback=check_class_weights,
                                                      help="Weights of the ce loss: auto (median frequency), "
                                                      "inverse, sqrt-inverse or a JSON file.",
                                                      show_default=False)] = None,
    early_stop: Annotated[int | None, typer.Option("--early-stop", callback=check_patience, metavar="PATIENCE",
                                                   help="Stop after this many epochs without a better "
                                                   "validation score.",
                                                   show_default=False)] = None,
    log_kind: Annotated[LogKind, typer.Option("--log", help="tensorboard: also write TensorBoard event files to "
                                              "OUT/tensorboard.")] = _D.log,
    amp: Annotated[bool, typer.Option("--amp/--no-amp", help="Mixed precision (CUDA only).")] = _D.amp,
    accum: Annotated[int, typer.Option("--accum", min=1, help="Batches per optimiser step.")] = _D.accum,
    workers: LoaderOpt = _D.workers,
    seed: SeedOpt = _D.seed,
    device: DeviceOpt = _D.device,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the run in --out from its last.pt.")] = False,
    skip_invalid: SkipInvalidOpt = False,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Train a model; validate every epoch; keep best.pt by mIoU (multiclass) or Dice (multilabel).

    Several GPUs: torchrun --nproc-per-node 4 -m datatools_train fit ... (DistributedDataParallel).

    Example:

        datatools train fit --data ds/ --folds folds.parquet --fold 0 \\
            --arch Unet --encoder resnet34 --size 512 --epochs 30 \\
            --out runs/r34_f0
    """
    from .engine import fit

    try:
        config = TrainConfig(arch=arch, encoder=encoder, weights=weights, size=square_side(size), epochs=epochs,
                             batch=batch,
                             lr=lr, weight_decay=weight_decay, optimizer=optimizer, scheduler=scheduler,
                             warmup=warmup, loss=loss, mode=mode, overlap=overlap,
                             aug=str(aug) if aug else None, lateral_pairs=lateral_pairs, amp=amp, accum=accum,
                             workers=workers, seed=seed, device=device, normalize=normalize,
                             stats=str(stats) if stats else None, sampler=sampler,
                             repeat_threshold=repeat_threshold, class_weights=class_weights, early_stop=early_stop,
                             log=log_kind)
    except ValueError as exc:
        raise fail(with_option_names(str(exc))) from None
    ds = _dataset(ann, images, data, skip_invalid, progress)
    train, val = _split(ds, folds, fold, partial_folds)
    if val is None:
        val = _validation(val_ann, val_images, val_data, progress)
    extras = [_dataset(None, None, e, skip_invalid, progress) for e in extra or []]
    result = fit(config, train, out, val=val, extra=extras, masks=masks, resume=resume, overwrite=overwrite,
                 progress=progress)
    if result.main:
        typer.echo(f"best {result.metric} {result.best_score:.4f} at epoch {result.best_epoch}; "
                   f"checkpoint {out / 'best.pt'}, history {out / 'history.csv'}")


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
    ds = _dataset(ann, images, data, skip_invalid, progress)
    fold_of = None
    if oof and folds is not None:
        from .evaluate import out_of_fold

        ds, fold_of = out_of_fold(folds, ds, partial_folds)
        val = None
    else:
        _, val = _split(ds, folds, fold, partial_folds)
    chosen = None
    if thresholds is not None:
        from .checkpoint import ModelSpec, load_checkpoint

        chosen = parse_thresholds(thresholds, ModelSpec.from_dict(load_checkpoint(ckpt[0])["spec"]).names)
    result = evaluate(ckpt, val or ds, out, tta=tta, vote=vote, thresholds=chosen, worst=worst, batch=batch,
                      workers=workers, device=device, errors=errors, boundary_px=boundary_px, fold_of=fold_of,
                      overwrite=overwrite, progress=progress)
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
        items = items_from_dataset(_dataset(ann, images, data, skip_invalid, progress))
    val = _validation(val_ann, val_images, val_data, progress)
    sliding = SlidingWindow.parse(sliding_window, blend, tile_batch=batch) if sliding_window else None
    result = predict(ckpt, items, out, tta=tta, vote=vote, sliding=sliding, coco=coco, save_probs=save_probs,
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
    ds = _dataset(ann, images, data, skip_invalid, progress)
    _, val = _split(ds, folds, fold, partial_folds)
    result = soup(ckpt, val or ds, out, greedy=greedy, batch=batch, workers=workers, device=device,
                  overwrite=overwrite, log=typer.echo)
    typer.echo(f"best: {result.best} in {out}")


app.command("export")(export_cmd)


def main() -> Any:
    return app()

"""``datatools train fit``: options in, :func:`train.engine.fit` out. Registered on the ``train`` app in
:mod:`train.cli`; importing it imports no torch."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.cli._common import (
    AnnOpt,
    DataOpt,
    DeviceOpt,
    ImagesOpt,
    OutOpt,
    OverlapOpt,
    OverwriteOpt,
    PartialFoldsOpt,
    ProgressOpt,
    SeedOpt,
    SkipInvalidOpt,
    fail,
    handle_errors,
    size_callback,
    with_option_names,
)

from .cli_data import open_data, split_folds, validation_set
from .config import LogKind, LossName, Mode, Optimizer, SamplerName, Scheduler, TrainConfig
from .options import (
    BatchOpt,
    FoldOpt,
    FoldsOpt,
    LoaderOpt,
    ValAnnOpt,
    ValDataOpt,
    ValImagesOpt,
    check_class_weights,
    check_crop,
    check_normalize,
    check_patience,
    check_probability,
    check_share,
    check_weights,
    square_side,
)

__all__ = ["fit_cmd"]

_D = TrainConfig()  # the one place defaults come from


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
    crop: Annotated[int | None, typer.Option("--crop", callback=check_crop, metavar="SIZE",
                                             help="Train on random SIZE crops at full resolution instead of resizing "
                                             "(validation still resizes).", show_default=False)] = None,
    crop_rare: Annotated[float, typer.Option("--crop-rare", callback=check_probability, metavar="P",
                                             help="Share of --crop crops centred on a rare class's pixel.")]
    = _D.crop_rare,
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
                             log=log_kind, crop=crop, crop_rare=crop_rare)
    except ValueError as exc:
        raise fail(with_option_names(str(exc))) from None
    ds = open_data(ann, images, data, skip_invalid, progress)
    train, val = split_folds(ds, folds, fold, partial_folds)
    if val is None:
        val = validation_set(val_ann, val_images, val_data, progress)
    extras = [open_data(None, None, e, skip_invalid, progress) for e in extra or []]
    result = fit(config, train, out, val=val, extra=extras, masks=masks, resume=resume, overwrite=overwrite,
                 progress=progress)
    if result.main:
        typer.echo(f"best {result.metric} {result.best_score:.4f} at epoch {result.best_epoch}; "
                   f"checkpoint {out / 'best.pt'}, history {out / 'history.csv'}")



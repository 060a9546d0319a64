"""``fit`` and the per-epoch validation: the training loop of ``datatools train fit``.

The run folder is written in place, one file at a time and each atomically, rather than staged as a whole:
``last.pt`` must survive an interrupted run so that ``--resume`` can continue it.
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, cast

from datatools.core.atomic import atomic_write_json
from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError, Interrupted, InvalidDatasetError
from datatools.core.lateral import MIRROR_TRANSFORMS, find_pairs, resolve_pairs

from .augment import build_transform, load_pipeline, transform_names
from .checkpoint import ModelSpec, load_checkpoint, save_checkpoint
from .config import Mode, SamplerName, TrainConfig
from .data import (
    MaskSource,
    SegmentationData,
    cache_dir_for,
    check_same_classes,
    detect_mode,
    seed_worker,
    without_leaks,
)
from .distributed import Runtime, setup
from .losses import build_loss
from .metrics import MetricAccumulator, Scores
from .prior import class_prior, init_head_bias
from .report import format_table, progress_bar, write_class_curves, write_curves, write_history, write_per_class
from .run_folder import after_failure, prepare_run_folder
from .run_log import RunLog, check_log
from .schedule import build_optimizer, lr_lambda
from .tta import normalize

#: A best epoch within this of the all-background baseline has not learned the objects, and fit says so.
BASELINE_MARGIN = 0.01

__all__ = ["FitResult", "default_loader_workers", "fit", "make_loader", "validate"]


@dataclass(frozen=True)
class FitResult:
    """What a finished run gives back (``best.pt`` holds the model)."""

    out: Path
    metric: str
    best_score: float
    best_epoch: int
    scores: Scores | None
    history: list[dict[str, Any]]
    main: bool = True  #: False in the other processes of a torchrun job, which write and print nothing


def default_loader_workers() -> int:
    """Half the cores (at least 1, at most 8): the other half runs the training step on a CPU."""
    from datatools.core.parallel import default_workers

    return max(1, min(8, default_workers() // 2))


def make_loader(data: Any, batch: int, *, workers: int | None, shuffle: bool, seed: int = 0, device: Any = None,
                sampler: Any = None, drop_last: bool = False) -> Any:
    """A DataLoader with seeded shuffling and augmentations, persistent workers and pinned memory on CUDA."""
    import torch

    workers = default_loader_workers() if workers is None else workers
    generator = torch.Generator()
    generator.manual_seed(seed)
    return torch.utils.data.DataLoader(
        data, batch_size=batch, shuffle=shuffle and sampler is None, sampler=sampler, num_workers=workers,
        pin_memory=getattr(device, "type", "cpu") == "cuda", drop_last=drop_last, persistent_workers=workers > 0,
        worker_init_fn=seed_worker, generator=generator)


def validate(model: Any, loader: Any, mode: Mode, names: Sequence[str], spec: ModelSpec, device: Any, *,
             loss_fn: Any = None, amp_dtype: Any = None, baseline: MetricAccumulator | None = None
             ) -> tuple[float, Scores]:
    """Mean loss and scores over a loader at the training size (argmax, or logit > 0 when multilabel);
    ``baseline``, when given, also gets the counts of the all-background (all-empty) prediction."""
    import torch

    model.eval()
    acc = MetricAccumulator(mode, names)
    total, count = 0.0, 0
    with torch.inference_mode(), torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        for x, y in loader:
            x = normalize(x.to(device, non_blocking=True), spec.mean, spec.std)
            y = y.to(device, non_blocking=True)
            logits = model(x).float()
            if loss_fn is not None:
                total += float(loss_fn(logits, y)) * len(x)
                count += len(x)
            pred = (logits > 0).long() if mode is Mode.MULTILABEL else logits.argmax(dim=1)
            acc.update(pred.cpu(), y.cpu())
            if baseline is not None:
                baseline.update(torch.zeros_like(pred).cpu(), y.cpu())
    return (total / count if count else math.nan), acc.compute()


def _against_baseline(best: Scores, baseline: Scores, config: TrainConfig, steps: int) -> str:
    """How the best epoch compares with predicting background everywhere, and why when it is not clearly above it
    (by more than ``BASELINE_MARGIN``)."""
    what = "all-empty" if best.metric == "dice" else "all-background"
    line = f"{what} baseline {best.metric} {baseline.score:.4f}; best {best.score:.4f}"
    gain = best.score - baseline.score
    if gain > BASELINE_MARGIN:
        return f"{line} is above it (+{gain:.4f})"
    start = "from random weights (--weights none)" if config.weights == "none" else "of training"
    verdict = f"is barely above it (+{gain:.4f})" if gain > 0 else "is not above it"
    return (f"{line} {verdict}: {steps} optimiser steps {start} are too few to learn where the objects are (the "
            "model has learned how common each class is, not where it lies); train for more epochs or from "
            "pretrained --weights")


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fit(config: TrainConfig, train: Dataset, out: str | os.PathLike[str], *, val: Dataset | None = None,
        extra: Sequence[Dataset] = (), masks: str | os.PathLike[str] | None = None, resume: bool = False,
        overwrite: bool = False, progress: bool = True, log: Callable[[str], None] = _stderr) -> FitResult:
    """Train an smp model; validate every epoch; keep the best checkpoint by mIoU (multiclass) or Dice.

    Args:
        config: hyper-parameters.
        train: training images (e.g. ``ds.subset(train_ids)`` of a fold).
        out: run folder: ``best.pt``, ``last.pt``, ``history.csv``, ``curves.png``, ``class_curves.png``,
            ``per_class.csv``, ``config.json``, ``classes.json``, the mask cache ``cache/`` and, with ``--log
            tensorboard``, ``tensorboard/``.
        val: validation images (None: no validation; the best checkpoint is then the lowest training loss).
        extra: more datasets (augmented copies...) added to training only; images derived from a validation
            image are dropped.
        masks: a ``datatools convert masks`` folder of ``train`` (and ``val`` when it comes from the same file).
        resume: continue from ``out/last.pt`` up to ``config.epochs``.
        overwrite: replace a non-empty ``out``.
        progress: progress bar on a terminal.
        log: where the one-line epoch summaries go (stderr by default).

    Raises:
        InvalidDatasetError: datasets with different categories, or nothing to train on.
        WeightsUnavailableError: ``--weights imagenet`` without a network.
        Interrupted: Ctrl-C. A run that has finished an epoch stays, resumable (``last.pt``); one that has not is
            removed, as is one that fails before its first epoch ends, so a rerun finds an empty ``out``.

    Example:
        >>> cfg = TrainConfig(encoder="resnet18", weights="none", size=256, epochs=5)
        >>> fit(cfg, Dataset.load("train.json", "images/"), "runs/r18", val=Dataset.load("val.json", "images/"))
    """
    out = Path(out)
    # bad pairs, a bad pipeline, or quarter turns on lateral classes fail before anything is written
    pairs = resolve_pairs(config.lateral_pairs, train.categories, str(train.source))
    build_transform(config.size, train=True, aug=config.aug, lateral=(pairs, train.class_map()))
    if config.early_stop is not None and (val is None or not val.images):
        raise DatatoolsError("--early-stop watches the validation score: give a validation set (--folds, "
                             "--val-data or --val-ann)")
    check_log(config.log)
    if not (resume and (out / "last.pt").is_file()):
        from .normalization import resolve_normalization

        name, mean, std = resolve_normalization(config.normalize, config.weights, [train, *extra],
                                                stats=config.stats, workers=config.workers, progress=progress)
        config = replace(config, normalize=name, mean=mean, std=std)
    rt: Runtime = setup(config.device)
    state = prepare_run_folder(out, resume, overwrite, rt.main)
    if state is not None:  # a resumed run keeps the normalisation it started with
        mean, std = tuple(state["spec"]["mean"]), tuple(state["spec"]["std"])
        name = (state.get("config") or {}).get("normalize") or ",".join(f"{v:g}" for v in (*mean, *std))
        config = replace(config, normalize=str(name), mean=mean, std=std)
    existed = out.is_dir()  # empty, or (--resume) a run
    done: list[int] = [int(state["epoch"])] if state else []  # the epochs last.pt holds, as they end
    try:
        return _fit(config, train, out, rt, state, done, val=val, extra=extra, masks=masks, progress=progress,
                    log=log)
    except BaseException as exc:
        if not rt.main:
            raise
        message = after_failure(out, existed, done[-1] if done else 0, config.epochs)
        if isinstance(exc, KeyboardInterrupt):
            raise Interrupted(message) from None
        raise


def _fit(config: TrainConfig, train: Dataset, out: Path, rt: Runtime, state: dict[str, Any] | None,
         done: list[int], *, val: Dataset | None, extra: Sequence[Dataset], masks: str | os.PathLike[str] | None,
         progress: bool, log: Callable[[str], None]) -> FitResult:
    import torch

    from .weights import build_model

    pairs = resolve_pairs(config.lateral_pairs, train.categories, str(train.source))
    if not train.images:
        raise InvalidDatasetError(f"{train.source}: no training images")
    for other in (val, *extra):
        if other is not None:
            check_same_classes(train, other)
    if state is not None:
        spec = ModelSpec.from_dict(state["spec"])
        mode = spec.mode
    else:
        mode = detect_mode(train) if config.mode is Mode.AUTO else config.mode
        spec = ModelSpec(config.arch, config.encoder, tuple(train.class_map().to_json()), mode, config.mean,
                         config.std, config.size, pairs.to_json())
    pairs = spec.lateral_pairs()
    extra = [without_leaks(e, val, log) for e in extra]
    torch.manual_seed(config.seed)
    device = rt.device
    cache = out / "cache"
    prerendered = Path(masks) if masks is not None else None
    start = int(state["epoch"]) if state else 0  # a resumed run shuffles (and crops) on from where it stopped
    crop = None
    if config.crop is not None:
        from .crop import RandomCrop, rare_values

        rare = rare_values([train, *extra], train.class_map())
        crop = RandomCrop(config.crop, rare, config.crop_rare, seed=config.seed, first_draw=start)
        if rt.main and config.crop_rare:
            rare_names = [c.name for c in train.class_map().classes if c.value in rare]
            log(f"crops of {config.crop} px, centred on a rare class with p {config.crop_rare:g}: "
                f"{rare_names or 'none'}")
    train_data = SegmentationData(
        [MaskSource(train, cache_dir_for(cache, train, mode, config.overlap), prerendered),
         *(MaskSource(e, cache_dir_for(cache, e, mode, config.overlap)) for e in extra)],
        mode, build_transform(config.crop or spec.size, train=True, aug=config.aug, seed=config.seed,
                              lateral=(pairs, train.class_map())), overlap=config.overlap, crop=crop)
    sampler: Any = None
    if rt.distributed:
        sampler = torch.utils.data.DistributedSampler(cast(Any, train_data), shuffle=True, seed=config.seed)
    elif config.sampler is SamplerName.REPEAT_FACTOR:
        from .sampling import RepeatFactorSampler, repeat_factors

        rf = repeat_factors([train, *extra], config.repeat_threshold)
        sampler = RepeatFactorSampler(rf.factors, seed=config.seed)
        if rt.main:
            names_of = {int(c["id"]): str(c["name"]) for c in train.categories}
            log(f"repeat-factor sampling, threshold {rf.threshold:.3g}: " + ", ".join(
                f"{names_of[c]} x{r:.2f}" for c, r in rf.class_factors.items()))
    train_loader = make_loader(train_data, config.batch, workers=config.workers, shuffle=True,
                               seed=config.seed + start,
                               device=device, sampler=sampler, drop_last=len(train_data) > config.batch)
    val_loader = None
    if val is not None and val.images and rt.main:
        same = prerendered if val.source == train.source else None
        val_data = SegmentationData([MaskSource(val, cache_dir_for(cache, val, mode, config.overlap), same)], mode,
                                    build_transform(spec.size, train=False), overlap=config.overlap)
        val_loader = make_loader(val_data, config.batch, workers=config.workers, shuffle=False, device=device)

    model = build_model(spec.arch, spec.encoder, spec.num_outputs, "none" if state else config.weights)
    if state is not None:
        model.load_state_dict(state["model"])
    elif not Path(config.weights).is_file():  # a new head (a weights file may hold a trained one): start at the prior
        init_head_bias(model, class_prior([train, *extra]), mode)
    cuda = device.type == "cuda"
    model = model.to(device, memory_format=torch.channels_last) if cuda else model.to(device)
    amp_dtype = None
    if config.amp and cuda:
        amp_dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype is torch.float16)
    weights = None
    if config.class_weights is not None:
        from .class_weights import class_weights

        values = class_weights(config.class_weights, [train, *extra], mode, spec.names)
        weights = torch.tensor(values, dtype=torch.float32, device=device)
        if rt.main:
            log("class weights: " + ", ".join(f"{n} {w:.3g}" for n, w in zip(spec.names, values, strict=True)))
    loss_fn = build_loss(config.loss, mode, weights)
    optimizer = build_optimizer(config, model.parameters())
    steps_per_epoch = math.ceil(len(train_loader) / config.accum)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_lambda(config, config.epochs * steps_per_epoch))
    names = spec.names
    metric = ("dice" if mode is Mode.MULTILABEL else "miou") if val is not None and val.images else "train_loss"
    best, best_epoch, history, best_scores = -math.inf, 0, [], None
    baseline: Scores | None = None
    if state is not None:
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state.get("scaler"):
            scaler.load_state_dict(state["scaler"])
        best, best_epoch = float(state["best_score"]), int(state["best_epoch"])
        history = list(state.get("history", []))
    net = rt.wrap(model)
    if rt.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "config.json", {**config.to_dict(), "mode": mode.value}, indent=2)
        train.class_map().save(out / "classes.json")
        log(f"training {spec.arch}/{spec.encoder} ({mode.value}, {spec.num_outputs} outputs) on "
            f"{len(train_data)} images, validating on {len(val.images) if val else 0}, device {device}")
        for line in pairs.describe():
            log(f"lateral pair: {line}")
        found = find_pairs(train.categories)
        if found and not pairs and set(transform_names(load_pipeline(config.aug))) & MIRROR_TRANSFORMS:
            log(f"warning: flips on lateral classes keep their names (--lateral-pairs none): "
                f"{'; '.join(found.describe())}")

    with progress_bar(progress and rt.main) as bar, RunLog(out, config.log, rt.main) as run_log:
        for epoch in range(start + 1, config.epochs + 1):
            if sampler is not None:
                sampler.set_epoch(epoch)
            net.train()
            task = bar.add_task(f"epoch {epoch}/{config.epochs}", total=len(train_loader), loss=math.nan, speed=0.0)
            t0, seen, loss_sum = time.perf_counter(), 0, 0.0
            for i, (x, y) in enumerate(train_loader):
                x = normalize(x.to(device, non_blocking=True), spec.mean, spec.std)
                if cuda:
                    x = x.contiguous(memory_format=torch.channels_last)
                y = y.to(device, non_blocking=True)
                step = (i + 1) % config.accum == 0 or i + 1 == len(train_loader)
                sync = contextlib.nullcontext() if step or not rt.distributed else net.no_sync()
                with sync:
                    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                        logits = net(x)
                    loss = loss_fn(logits.float(), y)
                    scaler.scale(loss / config.accum).backward()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise DatatoolsError(f"loss is {value} at epoch {epoch}, batch {i + 1}; lower --lr or "
                                         "check the masks")
                if step:
                    scaler.step(optimizer)
                    scaler.update()
                    optimizer.zero_grad(set_to_none=True)
                    scheduler.step()
                seen += len(x)
                loss_sum += value * len(x)
                bar.update(task, advance=1, loss=loss_sum / seen, speed=seen / (time.perf_counter() - t0))
            bar.remove_task(task)
            train_time = time.perf_counter() - t0
            row: dict[str, Any] = {"epoch": epoch, "lr": optimizer.param_groups[0]["lr"],
                                   "train_loss": loss_sum / max(seen, 1)}
            scores = None
            if val_loader is not None:
                base = MetricAccumulator(mode, names) if baseline is None else None
                row["val_loss"], scores = validate(model, val_loader, mode, names, spec, device, loss_fn=loss_fn,
                                                   amp_dtype=amp_dtype, baseline=base)
                baseline = base.compute() if base is not None else baseline
                row[f"val_{scores.metric}"] = scores.score
                row |= {f"{scores.metric}/{n}": v for n, v in zip(names, scores.per_class, strict=True)}
            row |= {"train_seconds": train_time, "train_images_per_s": seen * rt.world / train_time}
            history.append(row)
            score = row.get(f"val_{metric}", -row["train_loss"])
            improved = not math.isnan(score) and score > best
            if improved:
                best, best_epoch, best_scores = score, epoch, scores
            if rt.main:
                extra_state = {"epoch": epoch, "score": score, "metric": metric, "config": config.to_dict()}
                if improved:
                    save_checkpoint(out / "best.pt", spec, model, **extra_state)
                save_checkpoint(out / "last.pt", spec, model, **extra_state, best_score=best, best_epoch=best_epoch,
                                history=history, optimizer=optimizer.state_dict(),
                                scheduler=scheduler.state_dict(), scaler=scaler.state_dict())
                write_history(out / "history.csv", history)
                run_log.epoch(row)
                done.append(epoch)
                shown = f" val_loss {row['val_loss']:.4f} {metric} {score:.4f}" if scores else ""
                log(f"epoch {epoch}/{config.epochs} loss {row['train_loss']:.4f}{shown}"
                    f"{' (best)' if improved else ''} {row['train_images_per_s']:.1f} img/s")
            if rt.distributed:
                import torch.distributed as dist

                dist.barrier()
            if config.early_stop is not None and epoch - best_epoch >= config.early_stop:
                if rt.main:
                    log(f"early stop: no better {metric} for {config.early_stop} epochs (best at epoch {best_epoch})")
                break
    if rt.main and history:
        write_curves(out / "curves.png", history, metric)
        write_class_curves(out / "class_curves.png", history, metric, names)
        if best_scores is None and val_loader is not None and (out / "best.pt").is_file():
            model.load_state_dict(load_checkpoint(out / "best.pt")["model"])  # resumed after the best epoch
            base = MetricAccumulator(mode, names)
            _, best_scores = validate(model, val_loader, mode, names, spec, device, baseline=base)
            baseline = base.compute()
        if best_scores is not None:
            write_per_class(out / "per_class.csv", best_scores)
            log(f"best epoch {best_epoch} ({metric} {best:.4f}), per class:\n{format_table(best_scores, baseline)}")
            if baseline is not None:
                log(_against_baseline(best_scores, baseline, config, steps_per_epoch * len(history)))
    rt.close()
    return FitResult(out, metric, best, best_epoch, best_scores, history, rt.main)

"""Training configuration: one frozen dataclass, every default in one place. No torch here."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from enum import Enum
from typing import Any

from datatools.core.errors import DatatoolsError
from datatools.core.lateral import check_spec
from datatools.core.masks import OverlapPolicy

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "LogKind", "LossName", "Mode", "Optimizer", "SamplerName", "Scheduler",
           "TrainConfig"]

#: Input normalisation of (nearly) every smp encoder's ImageNet weights; stored in each checkpoint.
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class Mode(str, Enum):
    """Softmax over classes plus background (``multiclass``) or one sigmoid per class (``multilabel``)."""

    AUTO = "auto"  #: multilabel when annotations of different classes overlap heavily, else multiclass
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"


class Optimizer(str, Enum):
    ADAMW = "adamw"
    SGD = "sgd"


class Scheduler(str, Enum):
    """Learning-rate schedule over optimiser steps, after a linear warm-up."""

    COSINE = "cosine"
    POLY = "poly"


class LossName(str, Enum):
    """Losses from ``smp.losses`` (``ce`` is torch's CrossEntropyLoss, or soft BCE for multilabel)."""

    CE = "ce"
    DICE = "dice"
    FOCAL = "focal"
    LOVASZ = "lovasz"
    CE_DICE = "ce+dice"
    FOCAL_DICE = "focal+dice"


class SamplerName(str, Enum):
    """How training images are drawn: each once per epoch, or LVIS repeat factors (:mod:`train.sampling`)."""

    SHUFFLE = "shuffle"
    REPEAT_FACTOR = "repeat-factor"


class LogKind(str, Enum):
    """Logs besides history.csv: none, or TensorBoard event files in the run folder."""

    NONE = "none"
    TENSORBOARD = "tensorboard"


def _enum(cls: type[Enum], value: Any, name: str) -> Any:
    if isinstance(value, cls):
        return value
    try:
        return cls(value)
    except ValueError:
        allowed = ", ".join(str(m.value) for m in cls)
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}") from None


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run except the data.

    Attributes:
        arch: smp architecture (``Unet``, ``UnetPlusPlus``, ``DeepLabV3Plus``, ``FPN``, ``Segformer``, ``UPerNet``...).
        encoder: smp encoder name (``resnet34``, ``efficientnet-b0``, ``tu-convnext_tiny``...).
        weights: ``imagenet`` (or another smp weights name), ``none``, or a file with encoder or model weights.
        size: side of the square the images are resized to, a multiple of 32.
        epochs: passes over the training set.
        batch: images per forward pass (per GPU under torchrun).
        lr: peak learning rate.
        weight_decay: decoupled (adamw) or L2 (sgd) weight decay.
        optimizer: ``adamw`` or ``sgd`` (momentum 0.9, Nesterov).
        scheduler: ``cosine`` or ``poly`` (power 0.9), per optimiser step.
        warmup: fraction of the optimiser steps spent warming the learning rate up linearly.
        loss: see :class:`LossName`.
        mode: see :class:`Mode`.
        overlap: overlap policy of the semantic masks (``datatools convert masks --overlap``).
        aug: YAML file of online albumentations (None: the default pipeline of ``train.augment``).
        lateral_pairs: classes a mirrored sample swaps: ``auto`` (found from class names such as
            ``left_x``/``right_x``), ``none``, or ``LEFT=RIGHT,...`` (:mod:`datatools.core.lateral`).
        amp: mixed precision on CUDA (ignored on CPU).
        accum: batches whose gradients are accumulated before each optimiser step.
        workers: DataLoader worker processes (None: half the cores, at most 8).
        seed: seed of weights init, shuffling and augmentations.
        device: ``auto`` (CUDA when available), ``cpu``, ``cuda`` or ``cuda:N``.
        mean: per-channel input mean (images scaled to 0..1); set from ``normalize`` when ``fit`` starts.
        std: per-channel input std.
        normalize: ``auto`` (``imagenet`` with pretrained weights, ``dataset`` with ``none``), ``imagenet``,
            ``dataset`` or ``MEAN,STD`` (:mod:`train.normalization`); the checkpoint records what it resolved to.
        stats: an ``eda`` summary.json whose ``normalize`` values ``dataset`` takes (None: one pass over the images).
        sampler: see :class:`SamplerName`.
        repeat_threshold: image-share threshold of repeat-factor sampling (None: the house rare threshold times
            the most common class's share).
        class_weights: ``auto`` (median-frequency), ``inverse``, ``sqrt-inverse`` or a JSON file of weights for the
            cross-entropy part of the loss (None: unweighted).
        early_stop: stop after this many epochs without a better validation score (None: never).
        log: see :class:`LogKind`.
        crop: train on random ``crop`` x ``crop`` windows at full resolution instead of whole images resized to
            ``size`` (a multiple of 32; validation still resizes to ``size``; :mod:`train.crop`). None: no crops.
        crop_rare: probability that a crop is centred on a pixel of a rare class the image holds.

    Example:
        >>> cfg = TrainConfig(arch="Unet", encoder="resnet18", weights="none", size=256, epochs=5)
        >>> cfg.loss
        <LossName.CE_DICE: 'ce+dice'>
    """

    arch: str = "Unet"
    encoder: str = "resnet34"
    weights: str = "imagenet"
    size: int = 512
    epochs: int = 20
    batch: int = 8
    lr: float = 3e-4
    weight_decay: float = 1e-4
    optimizer: Optimizer = Optimizer.ADAMW
    scheduler: Scheduler = Scheduler.COSINE
    warmup: float = 0.05
    loss: LossName = LossName.CE_DICE
    mode: Mode = Mode.AUTO
    overlap: str = "smaller-on-top"
    aug: str | None = None
    lateral_pairs: str = "auto"
    amp: bool = False
    accum: int = 1
    workers: int | None = None
    seed: int = 0
    device: str = "auto"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    normalize: str = "auto"
    stats: str | None = None
    sampler: SamplerName = SamplerName.SHUFFLE
    repeat_threshold: float | None = None
    class_weights: str | None = None
    early_stop: int | None = None
    log: LogKind = LogKind.NONE
    crop: int | None = None
    crop_rare: float = 0.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here, so every reader sees the same values
        set_(self, "optimizer", _enum(Optimizer, self.optimizer, "optimizer"))
        set_(self, "scheduler", _enum(Scheduler, self.scheduler, "scheduler"))
        set_(self, "loss", _enum(LossName, self.loss, "loss"))
        set_(self, "mode", _enum(Mode, self.mode, "mode"))
        set_(self, "sampler", _enum(SamplerName, self.sampler, "sampler"))
        set_(self, "log", _enum(LogKind, self.log, "log"))
        set_(self, "stats", None if self.stats is None else str(self.stats))
        set_(self, "overlap", str(OverlapPolicy.parse(self.overlap)))
        set_(self, "mean", tuple(float(v) for v in self.mean))
        set_(self, "std", tuple(float(v) for v in self.std))
        set_(self, "aug", None if self.aug is None else str(self.aug))
        if self.size < 32 or self.size % 32:
            raise ValueError(f"size must be a positive multiple of 32, got {self.size}")
        for name in ("epochs", "batch", "accum"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.workers is not None and self.workers < 0:
            raise ValueError(f"workers must be >= 0, got {self.workers}")
        if not self.lr > 0 or self.weight_decay < 0:
            raise ValueError(f"lr must be > 0 and weight_decay >= 0, got {self.lr} and {self.weight_decay}")
        if not 0 <= self.warmup < 1:
            raise ValueError(f"warmup is a fraction of the steps in [0, 1), got {self.warmup}")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError(f"mean and std need 3 values (std > 0), got {self.mean} and {self.std}")
        if self.repeat_threshold is not None and not 0 < self.repeat_threshold <= 1:
            raise ValueError(f"repeat_threshold is an image share in (0, 1], got {self.repeat_threshold}")
        if self.crop is not None and (self.crop < 32 or self.crop % 32):
            raise ValueError(f"crop must be a positive multiple of 32, got {self.crop}")
        if not 0 <= self.crop_rare <= 1 or (self.crop_rare and self.crop is None):
            raise ValueError(f"crop_rare is a probability in [0, 1] for crops of --crop, got {self.crop_rare:g}"
                             + ("" if self.crop is not None else " without --crop"))
        if self.early_stop is not None and self.early_stop < 1:
            raise ValueError(f"early_stop must be >= 1 epochs, got {self.early_stop}")
        if self.class_weights is not None and "ce" not in self.loss.value.split("+"):
            raise ValueError(f"class_weights apply to the ce part of the loss; loss {self.loss.value} has none "
                             "(use ce or ce+dice)")
        from .normalization import parse_normalize

        parse_normalize(self.normalize)
        if not self.weights:
            raise ValueError("weights must be imagenet, none or a file")
        try:
            set_(self, "lateral_pairs", check_spec(self.lateral_pairs))
        except DatatoolsError as exc:
            raise ValueError(str(exc)) from None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (enums as their strings)."""
        return {k: (v.value if isinstance(v, Enum) else list(v) if isinstance(v, tuple) else v)
                for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        """The inverse of :meth:`to_dict`; unknown keys (from a newer version) are ignored."""
        known = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {k: tuple(v) if k in ("mean", "std") else v for k, v in values.items() if k in known}
        return cls(**kwargs)

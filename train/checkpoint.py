"""Checkpoints that carry everything needed to rebuild the model: arch, encoder, classes, mode, normalisation,
size, and the lateral class pairs its training flips swapped (which test-time flips then swap back). ``evaluate``,
``predict`` and ``soup`` need nothing else."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatools.core.atomic import atomic_path
from datatools.core.classes import ClassInfo, ClassMap, display_names
from datatools.core.errors import UnreadableFileError
from datatools.core.lateral import LateralPairs, channel_permutation

from .config import Mode

__all__ = ["FORMAT", "ModelSpec", "load_checkpoint", "model_from_checkpoint", "read_torch_file",
           "save_checkpoint"]

FORMAT = "datatools-train/1"


@dataclass(frozen=True)
class ModelSpec:
    """What a checkpoint says about its model.

    Attributes:
        arch: smp architecture.
        encoder: smp encoder.
        classes: the ``classes.json`` content (background first).
        mode: multiclass or multilabel.
        mean: input mean (images scaled to 0..1).
        std: input std.
        size: side of the square inputs the model was trained on.
        lateral: the class pairs training flips swapped (:meth:`LateralPairs.to_json`); None in checkpoints
            written before pairs were recorded (no pairs).
    """

    arch: str
    encoder: str
    classes: tuple[dict[str, Any], ...]
    mode: Mode
    mean: tuple[float, ...]
    std: tuple[float, ...]
    size: int
    lateral: dict[str, Any] | None = None

    @property
    def num_outputs(self) -> int:
        """Output channels: background + K classes (multiclass) or K planes (multilabel)."""
        k = len(self.classes) - 1
        return k if self.mode is Mode.MULTILABEL else k + 1

    @property
    def names(self) -> tuple[str, ...]:
        """Display names of the output channels (a name two categories share gets its id, see
        :func:`datatools.core.classes.display_names`): history.csv columns, per_class.csv, metrics, plots."""
        names = tuple(display_names((c["category_id"], str(c["name"])) for c in self.classes))
        return names[1:] if self.mode is Mode.MULTILABEL else names

    def class_map(self) -> ClassMap:
        """The class map the masks were rasterised with."""
        return ClassMap(tuple(ClassInfo(int(c["value"]), int(c["category_id"]), str(c["name"]),
                                        (int(c["color"][0]), int(c["color"][1]), int(c["color"][2])))
                              for c in self.classes if int(c["value"]) != 0))

    def lateral_pairs(self) -> LateralPairs:
        """The pairs the model was trained with (none for older checkpoints)."""
        names = {int(c["category_id"]): str(c["name"]) for c in self.classes if c.get("category_id") is not None}
        return LateralPairs.from_json(self.lateral, names)

    def channel_swaps(self) -> dict[str, list[int]]:
        """Per mirroring TTA view (``hflip``, ``vflip``, ``rot180``), the output-channel order that swaps paired
        classes back; empty without pairs.

        Example:
            >>> spec.channel_swaps()
            {'hflip': [0, 2, 1, 3], 'vflip': [0, 1, 2, 3], 'rot180': [0, 2, 1, 3]}
        """
        pairs = self.lateral_pairs()
        if not pairs:
            return {}
        ids = [None if c.get("category_id") is None else int(c["category_id"]) for c in self.classes]
        channels = ids[1:] if self.mode is Mode.MULTILABEL else ids
        views = {"hflip": (True, False), "vflip": (False, True), "rot180": (True, True)}
        return {view: channel_permutation(pairs.mirror_map(h, v), channels) for view, (h, v) in views.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"arch": self.arch, "encoder": self.encoder, "classes": [dict(c) for c in self.classes],
                "mode": self.mode.value, "mean": list(self.mean), "std": list(self.std), "size": self.size,
                "lateral": self.lateral}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(str(d["arch"]), str(d["encoder"]), tuple(dict(c) for c in d["classes"]), Mode(d["mode"]),
                   tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]), int(d["size"]),
                   d.get("lateral"))


def save_checkpoint(path: str | os.PathLike[str], spec: ModelSpec, model: Any, **extra: Any) -> None:
    """Write a checkpoint atomically: the spec, the model's state dict and ``extra`` (epoch, score, ...).

    The model is unwrapped from DistributedDataParallel first, so checkpoints load on one device.
    """
    import torch

    model = getattr(model, "module", model)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, "spec": spec.to_dict(), "model": state, **extra}, tmp)


def read_torch_file(path: str | os.PathLike[str], what: str) -> Any:
    """``torch.load`` of tensors only (``weights_only``), with one line naming the file when that fails.

    PyTorch's own message for a file it cannot load safely advises loading it with ``weights_only=False``, which
    runs whatever code the file holds: that advice never reaches the user, nor do torch's pickle warnings.

    Args:
        path: the file.
        what: what the file should have been, for the message (``"a datatools checkpoint"``).

    Raises:
        UnreadableFileError: missing, or not a torch file of tensors.

    Example:
        >>> read_torch_file("notes.txt", "a datatools checkpoint")
        Traceback (most recent call last):
        UnreadableFileError: notes.txt: not a datatools checkpoint (not a file torch.save wrote, or it holds ...)
    """
    import warnings

    import torch

    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"{path}: file not found (expected {what})")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # torch raises many types (UnpicklingError, RuntimeError, EOFError...) for a foreign file
        raise UnreadableFileError(f"{path}: not {what} (not a file torch.save wrote, or it holds objects other "
                                  "than tensors)") from None


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (tensors only: safe ``weights_only`` loading).

    Raises:
        UnreadableFileError: missing, not a torch file, or not a datatools checkpoint.

    Example:
        >>> ckpt = load_checkpoint("runs/a/best.pt")
        >>> ModelSpec.from_dict(ckpt["spec"]).arch
        'Unet'
    """
    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(f"{path}: checkpoint not found")
    ckpt = read_torch_file(path, "a datatools checkpoint")
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "spec" not in ckpt:
        raise UnreadableFileError(f"{path}: not a datatools checkpoint (a torch file without the {FORMAT!r} tag)")
    try:
        ModelSpec.from_dict(ckpt["spec"])
    except (KeyError, ValueError, TypeError) as exc:
        raise UnreadableFileError(f"{path}: checkpoint spec is incomplete ({exc})") from None
    return ckpt


def model_from_checkpoint(ckpt: dict[str, Any], device: Any = "cpu") -> tuple[Any, ModelSpec]:
    """Rebuild the model of a checkpoint (eval mode, on ``device``) and return it with its spec."""
    from .model import create_model

    spec = ModelSpec.from_dict(ckpt["spec"])
    model = create_model(spec.arch, spec.encoder, classes=spec.num_outputs, weights=None)
    model.load_state_dict(ckpt["model"])
    return model.to(device).eval(), spec

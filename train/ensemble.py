"""Checkpoints to pixel predictions: batched TTA, ensembles (mean of probabilities or pixel vote), thresholds.

The images stream through a DataLoader; each batch is resized to the first model's size, every model sees it
(with all its TTA views), the probabilities are averaged at that size, then each image's are resized back to
its own size and turned into a mask there.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt

from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.imageio import IMAGE_EXTENSIONS, read_image, read_image_size
from datatools.core.paths import require_folder

from .checkpoint import ModelSpec, load_checkpoint, model_from_checkpoint
from .config import Mode
from .distributed import resolve_device
from .sliding import SlidingWindow
from .tta import TTA, normalize, predict_probs

__all__ = ["Ensemble", "Item", "Prediction", "items_from_dataset", "items_from_folder"]



@dataclass(frozen=True)
class Item:
    """One image to predict: its name (relative to the image root), file, size and COCO id (if any)."""

    file_name: str
    path: Path
    height: int
    width: int
    image_id: Any = None


def items_from_dataset(dataset: Dataset) -> list[Item]:
    """The images of a dataset, in file order."""
    return [Item(img["file_name"], dataset.image_path(img), int(img["height"]), int(img["width"]), img["id"])
            for img in dataset.images]


def items_from_folder(folder: str | os.PathLike[str]) -> list[Item]:
    """Every image file under ``folder`` (sorted by relative path; sizes from the headers).

    Raises:
        InvalidDatasetError: the folder holds no image.
    """
    root = require_folder(folder)
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise InvalidDatasetError(f"{root}: no image files ({', '.join(IMAGE_EXTENSIONS)})")
    items = []
    for p in files:
        w, h = read_image_size(p)
        items.append(Item(p.relative_to(root).as_posix(), p, h, w))
    return items


class _Images:
    """torch Dataset protocol: (3, S, S) uint8 tensor (or the image as it is, size None) and the item index."""

    def __init__(self, items: Sequence[Item], size: int | None) -> None:
        self.items, self.size = list(items), size

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        import cv2
        import torch

        item = self.items[index]
        image = read_image(item.path)
        if image.shape[:2] != (item.height, item.width):
            raise InvalidDatasetError(f"{item.path}: image is {image.shape[1]}x{image.shape[0]}, "
                                      f"the records say {item.width}x{item.height}")
        small = image if self.size is None else cv2.resize(image, (self.size, self.size),
                                                            interpolation=cv2.INTER_AREA)
        return torch.from_numpy(np.ascontiguousarray(small.transpose(2, 0, 1))), index


@dataclass
class Prediction:
    """One image's prediction.

    Attributes:
        item: the image.
        probs: (C, S, S) float32 mean probabilities (or vote shares) at the first model's size, on the CPU.
        full: (C, H, W) float32 the same at the image's size (on the inference device); None when a sliding-window
            prediction was asked not to keep it (``keep_full=False``).
        mask: (H, W) uint8 class values (multiclass) or (K, H, W) bool planes (multilabel).
    """

    item: Item
    probs: Any
    full: Any
    mask: npt.NDArray[Any]


class Ensemble:
    """One or more checkpoints of the same classes and mode, ready to predict.

    Example:
        >>> ens = Ensemble(["runs/a/best.pt", "runs/b/best.pt"])
        >>> for p in ens.predictions(items_from_folder("test/"), tta=TTA.parse("hflip")):
        ...     p.mask.shape
    """

    def __init__(self, ckpts: Sequence[str | os.PathLike[str]], device: str = "auto") -> None:
        if not ckpts:
            raise InvalidDatasetError("give at least one --ckpt")
        self.device = resolve_device(device)
        self.members: list[tuple[Any, ModelSpec]] = []
        self.paths = [Path(c) for c in ckpts]
        for path in self.paths:
            model, spec = model_from_checkpoint(load_checkpoint(path), self.device)
            if self.device.type == "cuda":
                import torch

                model = model.to(memory_format=torch.channels_last)
            if self.members:
                first = self.members[0][1]
                if (spec.mode, spec.names) != (first.mode, first.names):
                    raise InvalidDatasetError(f"{path}: classes/mode {spec.mode.value} {list(spec.names)} differ "
                                              f"from {self.paths[0]}: {first.mode.value} {list(first.names)}")
            self.members.append((model, spec))
        self.spec = self.members[0][1]

    @property
    def mode(self) -> Mode:
        return self.spec.mode

    @property
    def names(self) -> tuple[str, ...]:
        return self.spec.names

    def batch_probs(self, images: Any, tta: TTA | None = None, *, vote: bool = False,
                    thresholds: Sequence[float] | None = None, max_batch: int | None = None,
                    native: bool = False) -> Any:
        """(N, C, S, S) mean probabilities over models and views for a uint8 batch at the first model's size
        (``native``: at the batch's own size, each model run on it unresized, as sliding-window tiles are).

        With ``vote``, each model casts its decision (argmax, or probability >= threshold) and the result holds
        the share of models that voted for each class.
        """
        import torch
        import torch.nn.functional as F

        size = images.shape[-2:]
        total = None
        with torch.inference_mode():
            for model, spec in self.members:
                x = images.float() if native or images.shape[-1] == spec.size else F.interpolate(
                    images.float(), size=(spec.size, spec.size), mode="bilinear", align_corners=False)
                x = normalize(x, spec.mean, spec.std)
                if self.device.type == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                probs = predict_probs(model, x, spec.mode, tta, max_batch=max_batch,
                                      channel_swaps=spec.channel_swaps())
                if probs.shape[-2:] != size:
                    probs = F.interpolate(probs, size=size, mode="bilinear", align_corners=False)
                if vote:
                    probs = self._decisions(probs, thresholds).float()
                total = probs if total is None else total + probs
        assert total is not None
        return total / len(self.members)

    def _decisions(self, probs: Any, thresholds: Sequence[float] | None) -> Any:
        import torch
        import torch.nn.functional as F

        if self.mode is Mode.MULTILABEL:
            t = torch.as_tensor(thresholds or [0.5] * probs.shape[1], device=probs.device, dtype=probs.dtype)
            return probs >= t.view(1, -1, 1, 1)
        return F.one_hot(probs.argmax(dim=1), probs.shape[1]).permute(0, 3, 1, 2)

    def decide(self, full: Any, thresholds: Sequence[float] | None = None, vote: bool = False) -> npt.NDArray[Any]:
        """(C, H, W) probabilities -> (H, W) uint8 class values, or (K, H, W) bool planes.

        Multilabel: ``probs >= threshold`` per class; with ``vote``, a plane is set where more than half of the
        models voted for it.
        """
        import torch

        if self.mode is Mode.MULTICLASS:
            return full.argmax(dim=0).to(torch.uint8).cpu().numpy()
        if vote:
            return (full > 0.5).cpu().numpy()
        t = torch.as_tensor(thresholds or [0.5] * full.shape[0], device=full.device, dtype=full.dtype)
        return (full >= t.view(-1, 1, 1)).cpu().numpy()

    def predictions(self, items: Sequence[Item], *, tta: TTA | None = None, vote: bool = False,
                    thresholds: Sequence[float] | None = None, batch: int = 8, workers: int | None = None,
                    max_batch: int | None = None, progress: bool = False,
                    sliding: SlidingWindow | None = None, keep_full: bool = True) -> Iterator[Prediction]:
        """Predict every item, in order, one :class:`Prediction` at a time (``sliding``: tile by tile at full
        resolution, one image at a time, :mod:`train.sliding`; with ``keep_full=False`` the image's (C, H, W)
        probabilities are never held whole: the mask and the small probabilities are made band by band)."""
        import torch
        import torch.nn.functional as F

        from .engine import default_loader_workers

        workers = default_loader_workers() if workers is None else workers
        if sliding is not None:
            yield from self._sliding(items, sliding, tta=tta, vote=vote, thresholds=thresholds, workers=workers,
                                     max_batch=max_batch, progress=progress, keep_full=keep_full)
            return
        loader: Any = torch.utils.data.DataLoader(cast(Any, _Images(items, self.spec.size)), batch_size=batch,
                                                  num_workers=workers,
                                             pin_memory=self.device.type == "cuda")
        bar = _bar(progress, len(items))
        with bar:
            task = bar.add_task("predicting", total=len(items))
            for images, index in loader:
                probs = self.batch_probs(images.to(self.device, non_blocking=True), tta, vote=vote,
                                         thresholds=thresholds, max_batch=max_batch)
                for k, i in enumerate(index.tolist()):
                    item = items[i]
                    full = F.interpolate(probs[k:k + 1], size=(item.height, item.width), mode="bilinear",
                                         align_corners=False)[0]
                    yield Prediction(item, probs[k].cpu(), full, self.decide(full, thresholds, vote))
                    bar.advance(task)


    def _sliding(self, items: Sequence[Item], sliding: SlidingWindow, *, tta: TTA | None, vote: bool,
                 thresholds: Sequence[float] | None, workers: int, max_batch: int | None,
                 progress: bool, keep_full: bool) -> Iterator[Prediction]:
        import torch
        import torch.nn.functional as F

        from .sliding import BandResize

        loader: Any = torch.utils.data.DataLoader(cast(Any, _Images(items, None)), batch_size=None,
                                                  num_workers=workers, pin_memory=self.device.type == "cuda")

        def tile_probs(tiles: Any) -> Any:
            return self.batch_probs(tiles, tta, vote=vote, thresholds=thresholds, max_batch=max_batch, native=True)

        size = (self.spec.size, self.spec.size)
        with _bar(progress, len(items)) as bar:
            task = bar.add_task("predicting", total=len(items))
            for image, index in loader:  # one (3, H, W) image at a time, unbatched: no copy
                item = items[int(index)]
                with torch.inference_mode():
                    image = image.to(self.device, non_blocking=True)
                    if keep_full:
                        full = sliding.probs(image, tile_probs)
                        small = F.interpolate(full[None], size=size, mode="bilinear", align_corners=False)[0]
                        mask = self.decide(full, thresholds, vote)
                    else:
                        full, resize, parts = None, BandResize(item.height, item.width, self.spec.size), []
                        for first, band in sliding.bands(image, tile_probs):
                            parts.append(self.decide(band, thresholds, vote))
                            resize.add(first, band)
                        mask, small = np.concatenate(parts, axis=-2), resize.result()
                yield Prediction(item, small.cpu(), full, mask)
                bar.advance(task)


def _bar(enabled: bool, total: int) -> Any:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, disable=not enabled or not console.is_terminal)

"""Predictions of an ensemble wherever the command's engine runs its work: this process (``--engine local``) or
the workers of a Dask cluster (``--engine dask``), with the same bytes.

On a cluster, the images go out in the batches the local DataLoader would make (``--batch`` consecutive images),
one task per batch, through the one seam (:func:`datatools.core.parallel.parallel_imap`: ordered, streaming,
bounded in flight). Each worker runs the one inference loop (:meth:`Ensemble.predictions`) on its batch, with the
ensemble it loaded once (:func:`datatools.core.parallel.worker_cache`, keyed by the checkpoints' paths, sizes and
modification times, and the device), and sends back only what the command keeps of each image (``finish``).

GPUs: a batch asks for the Dask worker resource ``GPU`` (workers started with ``--resources GPU=1``) when the
device is ``cuda`` or ``auto`` and the cluster has such workers; on ``cpu`` any worker runs it.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from datatools.core.engine import active_engine
from datatools.core.errors import DatatoolsError
from datatools.core.parallel import parallel_imap, worker_cache

from .ensemble import Ensemble, Item, Prediction
from .sliding import SlidingWindow
from .tta import TTA

__all__ = ["GPU", "driver_device", "gpu_resources", "light", "predictions"]

R = TypeVar("R")

#: the Dask worker resource that marks a worker with a GPU
GPU = "GPU"


def driver_device(device: str) -> str:
    """The device of the command's own ensemble: ``device``, or ``cpu`` on a cluster (the workers predict; the
    command reads only the checkpoints' classes and sizes, and needs no GPU)."""
    return device if active_engine() is None else "cpu"


def gpu_resources(device: str, offered: bool) -> dict[str, float] | None:
    """What a batch asks of its worker: one ``GPU`` for a ``cuda`` or ``auto`` device when some worker of the
    cluster offers one (``offered``), nothing otherwise (``cpu``; or GPUs not declared: every worker may run it).

    Example:
        >>> gpu_resources("cuda", True), gpu_resources("cpu", True), gpu_resources("auto", False)
        ({'GPU': 1}, None, None)
    """
    wants_gpu = device == "auto" or device.startswith("cuda")
    return {GPU: 1} if wants_gpu and offered else None


def light(pred: Prediction) -> Prediction:
    """What ``train predict`` keeps of a prediction: the image, its small probabilities and its mask (not the
    full-size probabilities, which would be the largest thing to send back)."""
    return Prediction(pred.item, pred.probs.clone(), None, pred.mask)


@dataclass(frozen=True)
class _Model:
    """What makes a worker's ensemble: the checkpoints (absolute path, size, modification time) and the device."""

    files: tuple[tuple[str, int, int], ...]
    device: str

    @classmethod
    def of(cls, paths: Sequence[Path], device: str) -> _Model:
        stats = [(str(Path(p).absolute()), os.stat(p)) for p in paths]
        return cls(tuple((p, s.st_size, s.st_mtime_ns) for p, s in stats), device)

    def load(self) -> Ensemble:
        try:
            return Ensemble([p for p, _, _ in self.files], self.device)
        except DatatoolsError:
            raise
        except Exception as exc:  # e.g. no CUDA on this worker: one line, not a worker's traceback
            raise DatatoolsError(f"{self.files[0][0]}: cannot load the model on this dask worker "
                                 f"({type(exc).__name__}: {exc})") from None


@dataclass(frozen=True)
class _Run:
    """Everything a batch task needs besides its images."""

    model: _Model
    tta: TTA | None
    vote: bool
    thresholds: tuple[float, ...] | None
    max_batch: int | None
    sliding: SlidingWindow | None
    finish: Callable[[Prediction], Any]
    keep_full: bool = True


def _predict_batch(run: _Run, batch: list[Item]) -> list[Any]:
    """A task: one batch of images through the worker's ensemble (loaded at its first batch)."""
    ens = worker_cache(("ensemble", run.model), run.model.load)
    return [run.finish(pred) for pred in ens.predictions(batch, tta=run.tta, vote=run.vote, thresholds=run.thresholds,
                                                         batch=len(batch), workers=0, max_batch=run.max_batch,
                                                         sliding=run.sliding, keep_full=run.keep_full)]


def predictions(ens: Ensemble, items: Sequence[Item], *, device: str, finish: Callable[[Prediction], R],
                tta: TTA | None = None, vote: bool = False, thresholds: Sequence[float] | None = None, batch: int = 8,
                workers: int | None = None, max_batch: int | None = None, progress: bool = False,
                sliding: SlidingWindow | None = None, keep_full: bool = True) -> Iterator[R]:
    """``finish(prediction)`` of every item, in order: :meth:`Ensemble.predictions` in this process, or its batches
    on the workers of the active Dask engine (each worker loads ``ens``'s checkpoints once, on ``device``).

    Args:
        ens: the command's ensemble (on a cluster, only its checkpoint paths are used).
        items: the images.
        device: ``auto``, ``cpu`` or ``cuda``, as the user gave it (on a cluster, resolved on each worker).
        finish: what to keep of each prediction, run where it was made (module level, so it can travel:
            :func:`light` for masks and small probabilities, or a rule that turns it into labels).
        tta, vote, thresholds, batch, workers, max_batch, progress, sliding, keep_full: as
            :meth:`Ensemble.predictions` (``workers``, the DataLoader's, apply in this process only).

    Example:
        >>> for pred in predictions(ens, items, device="cuda", finish=light, batch=16):
        ...     pred.mask.shape
    """
    engine = active_engine()
    if engine is None:
        for pred in ens.predictions(items, tta=tta, vote=vote, thresholds=thresholds, batch=batch, workers=workers,
                                    max_batch=max_batch, progress=progress, sliding=sliding, keep_full=keep_full):
            yield finish(pred)
        return
    run = _Run(_Model.of(ens.paths, device), tta, vote, tuple(thresholds) if thresholds else None, max_batch,
               sliding, finish, keep_full)
    batches = [list(items[a:a + batch]) for a in range(0, len(items), batch)]
    for results in parallel_imap(functools.partial(_predict_batch, run), batches, chunksize=1, desc="predicting",
                                 progress=progress, resources=gpu_resources(device, engine.offers(GPU)), units=len):
        yield from results

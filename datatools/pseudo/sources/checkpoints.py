"""Checkpoints: one model or an ensemble (mean of probabilities) with batched TTA, through the trainer's predict
path (``datatools_train.ensemble.Ensemble.predictions``), in this process or on the workers of a Dask cluster
(``datatools_train.cluster_predict``). torch is imported only when this source is built."""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..rule import RuleConfig
from ..writer import ImageLabels
from .base import Decision, Target, check_categories, decide, sha256_of

__all__ = ["CheckpointSource"]


class CheckpointSource:
    """Models that predict the images now.

    Args:
        ckpts: checkpoints of ``datatools train fit`` (same classes and mode).
        tta: views, e.g. ``"hflip,vflip"`` (see ``datatools_train.tta.TTA.parse``).
        batch: images per batch (all TTA views of a batch go through the model together).
        device: ``auto``, ``cpu``, ``cuda`` (with ``--engine dask``: the workers'; a batch then asks for a worker
            with the Dask resource ``GPU`` when some worker offers it).
        loader_workers: DataLoader worker processes (None: the trainer's default).
        sliding: a ``datatools_train.sliding.SlidingWindow``: predict tile by tile at full resolution instead of
            resizing each image.

    Raises:
        UnreadableFileError: a checkpoint is missing or not a datatools checkpoint.
        InvalidDatasetError: the checkpoints disagree on classes or mode.

    Example:
        >>> src = CheckpointSource(["runs/a/best.pt", "runs/b/best.pt"], tta="hflip")
    """

    kind = "ckpt"

    def __init__(self, ckpts: Sequence[str | os.PathLike[str]], *, tta: str | None = None, batch: int = 8,
                 device: str = "auto", loader_workers: int | None = None, sliding: Any = None) -> None:
        from datatools_train.cluster_predict import driver_device
        from datatools_train.ensemble import Ensemble
        from datatools_train.tta import TTA

        try:
            self.tta = TTA.parse(tta)
        except ValueError as exc:
            from datatools.core.errors import DatatoolsError

            raise DatatoolsError(f"--tta: {exc}") from None
        self.paths = [Path(c) for c in ckpts]
        self.ensemble = Ensemble(self.paths, driver_device(device))
        self.device = device
        self.mode = self.ensemble.mode.value
        self.batch, self.loader_workers, self.sliding = batch, loader_workers, sliding

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(str(c["name"]) for c in self.ensemble.spec.classes) if self.mode == "multiclass" \
            else self.ensemble.names

    def classes(self) -> list[tuple[int, str]]:
        return [(int(c.category_id or 0), c.name) for c in self.ensemble.spec.class_map().classes]

    def check(self, targets: Sequence[Target], categories: Sequence[dict[str, Any]] | None, source: Any) -> None:
        if categories is not None:
            check_categories(str(self.paths[0]), self.classes(), categories, source)

    def provenance(self) -> dict[str, Any]:
        return {"kind": self.kind, "mode": self.mode,
                "ckpts": [{"path": str(p), "sha256": sha256_of(p)} for p in self.paths],
                "tta": {"views": list(self.tta.views), "scales": list(self.tta.scales)},
                **({"sliding_window": {"tile": self.sliding.tile, "stride": self.sliding.stride,
                                       "blend": self.sliding.blend}} if self.sliding is not None else {})}

    def labels(self, targets: Sequence[Target], decision: Decision, rule: RuleConfig, *, workers: int | None,
               progress: bool) -> Iterator[ImageLabels]:
        from datatools_train.cluster_predict import predictions
        from datatools_train.ensemble import Item

        items = [Item(t.file_name, t.path, t.size_hw[0], t.size_hw[1], t.record.get("id")) for t in targets]
        yield from predictions(self.ensemble, items, device=self.device, finish=functools.partial(_labels, decision),
                               tta=self.tta, batch=self.batch, workers=self.loader_workers, progress=progress,
                               sliding=self.sliding)


def _labels(decision: Decision, pred: Any) -> ImageLabels:
    """The rule on one prediction's full-size probabilities (run where the prediction was made)."""
    return decide(pred.full.float().cpu().numpy(), decision)

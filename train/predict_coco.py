"""``predict --coco``: the predictions as a datatools dataset folder (``OUT/coco/annotations.json`` + ``images/``),
one RLE annotation per connected component and class, through the writer ``pseudo-label`` uses."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from .checkpoint import ModelSpec
from .config import Mode
from .ensemble import Item

__all__ = ["PredictionWriter"]


class PredictionWriter:
    """Streams predictions into a dataset folder (images hard-linked where possible, else copied).

    Example:
        >>> with PredictionWriter(tmp / "coco", spec, ckpts) as w:
        ...     w.add(item, mask)
        ...     w.finish()
    """

    def __init__(self, out: Path, spec: ModelSpec, ckpts: Sequence[Path]) -> None:
        from datatools.pseudo.writer import DatasetWriter

        self.spec = spec
        self.classes = [c for c in spec.classes if int(c["value"]) != 0]
        categories = [{"id": int(c["category_id"]), "name": str(c["name"])} for c in self.classes]
        self.writer = DatasetWriter(out, categories, link=True)
        self.source = [str(p) for p in ckpts]

    def __enter__(self) -> PredictionWriter:
        self.writer.__enter__()
        return self

    def __exit__(self, *exc: Any) -> Any:
        return self.writer.__exit__(*exc)

    def add(self, item: Item, mask: npt.NDArray[Any]) -> None:
        """One image's mask: (H, W) class values (multiclass) or (K, H, W) bool planes (multilabel)."""
        from datatools.pseudo.writer import labels_from_multiclass, labels_from_multilabel

        cats = [int(c["category_id"]) for c in self.classes]
        names = list(self.spec.names)
        if self.spec.mode is Mode.MULTILABEL:
            labels = labels_from_multilabel(mask, np.zeros(mask.shape[1:], bool), None, cats, names)
        else:
            labels = labels_from_multiclass(mask, None, cats, names)
        record = {"id": item.image_id, "file_name": item.file_name, "height": item.height, "width": item.width}
        self.writer.add(record, item.path, labels, {"predicted_by": self.source})

    def finish(self) -> None:
        """Write annotations.json and a summary of the run."""
        self.writer.finish({"ckpts": self.source, "images": self.writer.added,
                            "annotations": len(self.writer.coco["annotations"])})

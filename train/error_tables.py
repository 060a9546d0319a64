"""The error breakdown of a whole evaluation, accumulated image by image (no mask is kept past its image except
the small error maps of the few worst images per class, for the galleries).

Tables:

- ``errors.parquet``: one row per image and class with a true or predicted pixel: ``image_id``, ``file_name``,
  ``fold``, ``class``, then :data:`~datatools_train.errors.COUNTS` and ``confused_as/<class>`` (multiclass).
- :meth:`ErrorAccumulator.summary`: one row per class (see :data:`SUMMARY_COLUMNS`).
- ``objects.parquet``: one row per ground-truth object: ``image_id``, ``class``, ``area``, ``size`` (COCO small
  < 32², medium < 96², large), ``hit`` (share predicted as its class), ``recalled`` (``hit >= 0.5``).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from .errors import COUNTS, image_errors, object_hits

__all__ = ["ErrorAccumulator", "GalleryEntry", "SIZE_BUCKETS", "size_bucket"]

#: COCO object sizes by area in pixels: small < 32², medium < 96², large otherwise.
SIZE_BUCKETS = (("small", 32 ** 2), ("medium", 96 ** 2), ("large", math.inf))
#: Side of the stored error maps of gallery candidates.
GALLERY_SIDE = 320


def size_bucket(area: int) -> str:
    """COCO size name of an object of ``area`` pixels.

    Example:
        >>> size_bucket(1023), size_bucket(1024), size_bucket(9216)
        ('small', 'medium', 'large')
    """
    return next(name for name, limit in SIZE_BUCKETS if area < limit)


@dataclass(frozen=True)
class GalleryEntry:
    """A gallery candidate: the image and its error-kind map for one class, at most ``GALLERY_SIDE`` wide."""

    error_px: int
    image_id: Any
    file_name: str
    path: Path
    kinds: npt.NDArray[np.uint8]


class ErrorAccumulator:
    """Fold each image's breakdown into dataset totals, per-image rows and per-object hits.

    Example:
        >>> acc = ErrorAccumulator(["red", "blue"], multilabel=False)
        >>> acc.add(image_id, "a.png", path, truth, pred, annotations, value_of)
        >>> acc.summary()
    """

    def __init__(self, names: Sequence[str], multilabel: bool, boundary_px: int = 3, worst: int = 4) -> None:
        self.names = list(names)
        self.multilabel = multilabel
        self.boundary_px = boundary_px
        self.worst = worst
        k = len(self.names)
        self.counts = np.zeros((k, len(COUNTS)), np.int64)
        self.confused = np.zeros((k, k + 1), np.int64)
        self.rows: list[dict[str, Any]] = []
        self.objects: list[dict[str, Any]] = []
        self._heaps: list[list[tuple[int, int, GalleryEntry]]] = [[] for _ in range(k)]
        self._seen = 0

    def add(self, image_id: Any, file_name: str, path: Path, truth: npt.NDArray[Any], pred: npt.NDArray[Any],
            annotations: Sequence[dict[str, Any]], value_of: dict[int, int], fold: int | None = None) -> None:
        """Add one image (truth and prediction as :func:`~datatools_train.errors.image_errors` takes them)."""
        k = len(self.names)
        res = image_errors(truth, pred, k, self.boundary_px, kinds=self.worst > 0)
        self.counts += res.counts
        self.confused += res.confused_as
        errors = res.error_px()
        for c in range(k):
            if res.counts[c, 0] or res.counts[c, 1]:
                row = {"image_id": image_id, "file_name": file_name, "fold": fold, "class": self.names[c],
                       **dict(zip(COUNTS, res.counts[c].tolist(), strict=True))}
                if not self.multilabel:
                    row.update({f"confused_as/{n}": int(res.confused_as[c, j + 1])
                                for j, n in enumerate(self.names) if j != c})
                self.rows.append(row)
            if c in res.kinds and self.worst > 0:
                self._offer(c, int(errors[c]), image_id, file_name, path, res.kinds[c])
        for hit in object_hits(annotations, value_of, truth, pred):
            self.objects.append({"image_id": image_id, "fold": fold, "class": self.names[hit.row], "area": hit.area,
                                 "size": size_bucket(hit.area), "hit": round(hit.hit, 6),
                                 "recalled": hit.hit >= 0.5})

    def _offer(self, c: int, error_px: int, image_id: Any, file_name: str, path: Path,
               kinds: npt.NDArray[np.uint8]) -> None:
        heap = self._heaps[c]
        self._seen += 1
        key = (error_px, -self._seen)  # ties: the earlier image stays
        if len(heap) >= self.worst and key <= heap[0][:2]:
            return
        h, w = kinds.shape
        scale = min(1.0, GALLERY_SIDE / max(h, w))
        small = kinds if scale == 1.0 else np.asarray(cv2.resize(
            kinds, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_NEAREST), np.uint8)
        entry = (key[0], key[1], GalleryEntry(error_px, image_id, file_name, path, small))
        if len(heap) >= self.worst:
            heapq.heapreplace(heap, entry)
        else:
            heapq.heappush(heap, entry)

    def gallery(self) -> dict[str, list[GalleryEntry]]:
        """Class -> its worst images (most wrong pixels first)."""
        return {self.names[c]: [e for _, _, e in sorted(heap, key=lambda t: (-t[0], -t[1]))]
                for c, heap in enumerate(self._heaps) if heap}

    def summary(self, iou: Sequence[float] | None = None, dice: Sequence[float] | None = None) -> Any:
        """One row per class: pixels, error shares, Boundary IoU, object recall (a pandas DataFrame)."""
        import pandas as pd

        c = self.counts
        col = {name: c[:, i] for i, name in enumerate(COUNTS)}
        error = c[:, 3:9].sum(axis=1)
        rows = []
        objects = pd.DataFrame(self.objects, columns=["image_id", "fold", "class", "area", "size", "hit", "recalled"])
        for k, name in enumerate(self.names):
            e = int(error[k])
            under = int(col["under_boundary"][k] + col["under_interior"][k])
            over = int(col["over_boundary"][k] + col["over_interior"][k])
            conf = int(col["confusion_boundary"][k] + col["confusion_interior"][k])
            boundary = int(col["under_boundary"][k] + col["over_boundary"][k] + col["confusion_boundary"][k])
            row: dict[str, Any] = {"class": name, "truth_px": int(col["truth_px"][k]), "error_px": e,
                                   "under_px": under, "over_px": over, "confusion_px": conf,
                                   "under": _share(under, e), "over": _share(over, e), "confusion": _share(conf, e),
                                   "boundary": _share(boundary, e)}
            for kind in ("under", "over", "confusion"):
                row[f"{kind}_boundary_px"] = int(col[f"{kind}_boundary"][k])
            if not self.multilabel:
                others = {n: int(self.confused[k, j + 1]) for j, n in enumerate(self.names) if j != k}
                top = max(others, key=lambda n: others[n]) if others and max(others.values()) > 0 else None
                row["confused_most_as"] = top
                row["confused_most_px"] = others[top] if top else 0
            if iou is not None and dice is not None:
                row["iou"], row["dice"] = float(iou[k]), float(dice[k])
            union = int(col["biou_union"][k])
            row["boundary_iou"] = int(col["biou_inter"][k]) / union if union else math.nan
            mine = objects[objects["class"] == name]
            row["objects"] = len(mine)
            for size, _ in SIZE_BUCKETS:
                part = mine[mine["size"] == size]
                row[f"recall_{size}"] = float(part["recalled"].mean()) if len(part) else math.nan
                row[f"objects_{size}"] = len(part)
            if len(mine):
                cut = float(np.quantile(mine["area"], 0.1))
                low = mine[mine["area"] <= cut]
                row["recall_smallest_decile"], row["smallest_decile_area"] = float(low["recalled"].mean()), cut
            else:
                row["recall_smallest_decile"], row["smallest_decile_area"] = math.nan, math.nan
            rows.append(row)
        return pd.DataFrame(rows)

    def errors_frame(self) -> Any:
        """``errors.parquet`` as a DataFrame (columns fixed even when empty)."""
        import pandas as pd

        columns = ["image_id", "file_name", "fold", "class", *COUNTS]
        if not self.multilabel:
            columns += [f"confused_as/{n}" for n in self.names]
        frame = pd.DataFrame(self.rows, columns=columns)
        for c in columns:
            if c.startswith("confused_as/"):  # a class is never confused with itself: 0, not missing
                frame[c] = frame[c].fillna(0).astype("int64")
        return frame

    def objects_frame(self) -> Any:
        """``objects.parquet`` as a DataFrame."""
        import pandas as pd

        return pd.DataFrame(self.objects, columns=["image_id", "fold", "class", "area", "size", "hit", "recalled"])


def _share(part: int, whole: int) -> float:
    return part / whole if whole else math.nan

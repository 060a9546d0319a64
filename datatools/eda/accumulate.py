"""The one streaming pass: per-image facts are added up in the parent as they arrive.

Only the per-row numbers (one small row per image and per annotation) are kept; arrays that do not belong
to a row (heat maps, overlap matrices) are summed at once, so memory does not grow with the number of
images beyond the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.issues import Issue
from datatools.core.parallel import default_workers, parallel_map
from datatools.eda.stats import ImageJob, ImageStats, PixelStats, StatsConfig, compared_policies, image_stats

__all__ = ["Totals", "run_pass"]

#: Images per parallel_map call: the results of one batch are all that is held at a time.
BATCH_SIZE = 1024


@dataclass
class Totals:
    """What the pass learned, summed over images, plus one small row per image and per annotation.

    Attributes:
        n_classes: K.
        policies: names of the overlap policies compared with the chosen one.
        class_px: (N, K + 2) int64 per-image pixel counts (background, 1..K, ignore), built by :meth:`finish`.
        heat: (K + 1, S, S) int64 summed coverage per class value (x 255); row 0 unused.
        pair_px: (K + 1, K + 1) int64 pixels claimed by two classes (upper triangle; the diagonal: by two
            annotations of the same class).
        pixel_rows: per image, its :class:`PixelStats` or ``None``.
        overlap_rows: per image, ``(overlap_px, conflict_px, *changed_px per policy)``.
        ann_px: true pixel area of every annotation, in job order.
        ann_bbox_xywh: every annotation's mask box, in job order.
        channel_sum: summed RGB values over every decoded pixel.
        channel_sumsq: summed squares.
        pixels: decoded pixels.
        issues: file problems found while reading.
        thumbnails: image position -> JPEG bytes.
    """

    n_classes: int
    heat_size: int
    policies: tuple[str, ...]
    heat: npt.NDArray[np.int64]
    pair_px: npt.NDArray[np.int64]
    class_px: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros((0, 0), np.int64))
    pixel_rows: list[PixelStats | None] = field(default_factory=list)
    overlap_rows: list[tuple[int, ...]] = field(default_factory=list)
    ann_px: list[int] = field(default_factory=list)
    ann_bbox_xywh: list[tuple[float, float, float, float]] = field(default_factory=list)
    channel_sum: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    channel_sumsq: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    pixels: int = 0
    issues: list[Issue] = field(default_factory=list)
    thumbnails: dict[int, bytes] = field(default_factory=dict)
    _class_rows: list[npt.NDArray[np.int64]] = field(default_factory=list, repr=False)

    @classmethod
    def empty(cls, n_classes: int, heat_size: int, policies: Sequence[str]) -> Totals:
        k1 = n_classes + 1
        return cls(n_classes, heat_size, tuple(policies), np.zeros((k1, heat_size, heat_size), np.int64),
                   np.zeros((k1, k1), np.int64))

    def add(self, stats: ImageStats) -> None:
        """Fold one image's facts in (call in image order: sums are then the same run to run)."""
        self._class_rows.append(stats.class_px)
        for value, plane in zip(stats.heat_values, stats.heat, strict=True):
            self.heat[value] += plane
        for a, b, px in stats.pair_px:
            self.pair_px[a, b] += px
        self.overlap_rows.append((stats.overlap_px, stats.conflict_px,
                                  *(stats.changed_px[p] for p in self.policies)))
        self.ann_px.extend(stats.ann_px)
        self.ann_bbox_xywh.extend(stats.ann_bbox_xywh)
        self.pixel_rows.append(stats.pixels)
        if stats.pixels is not None:
            self.channel_sum += stats.pixels.channel_sum
            self.channel_sumsq += stats.pixels.channel_sumsq
            self.pixels += stats.pixels.pixels
        if stats.issue is not None:
            self.issues.append(stats.issue)
        if stats.thumbnail is not None:
            self.thumbnails[stats.index] = stats.thumbnail

    def finish(self) -> Totals:
        """Stack the per-image class counts into ``class_px``."""
        k2 = self.n_classes + 2
        self.class_px = np.stack(self._class_rows) if self._class_rows else np.zeros((0, k2), np.int64)
        self._class_rows = []
        return self

    def normalize_mean_std(self) -> tuple[list[float], list[float]] | None:
        """Dataset RGB mean and std over every decoded pixel, on the 0..1 scale (``A.Normalize`` with
        ``max_pixel_value=255``), or ``None`` when no image was decoded."""
        if not self.pixels:
            return None
        mean = self.channel_sum / self.pixels
        var = np.maximum(self.channel_sumsq / self.pixels - mean * mean, 0.0)
        return (mean / 255.0).tolist(), (np.sqrt(var) / 255.0).tolist()


def run_pass(
    jobs: Sequence[ImageJob],
    cfg: StatsConfig,
    *,
    workers: int | None = None,
    progress: bool = True,
    batch_size: int = BATCH_SIZE,
) -> Totals:
    """Map :func:`image_stats` over the images and add the results up as each batch arrives.

    Args:
        jobs: one job per image, in dataset order.
        cfg: shared settings.
        workers: processes (default: all cores).
        progress: show a progress bar.
        batch_size: images per parallel map; bounds what is held before it is summed.

    Returns:
        The totals (``finish`` already called).

    Example:
        >>> totals = run_pass(jobs, StatsConfig("images/", ds.class_map(), OverlapPolicy()), workers=2)
        >>> totals.class_px.shape == (len(jobs), len(ds.class_map()) + 2)
        True
    """
    totals = Totals.empty(len(cfg.class_map), cfg.heat_size, [str(p) for p in compared_policies(cfg.overlap)])
    fn = partial(image_stats, cfg=cfg)
    n_workers = default_workers() if workers is None else workers
    n_batches = max(1, -(-len(jobs) // batch_size))
    # the processes already fill the cores: OpenCV's own threads would only contend with them (forked workers
    # inherit the setting; it is restored afterwards)
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for b in range(n_batches):
            batch = jobs[b * batch_size:(b + 1) * batch_size]
            # small chunks: a few images each, so no worker sits idle at the end of a batch
            chunk = max(1, min(8, len(batch) // (max(n_workers, 1) * 16)))
            desc = "eda: images" if n_batches == 1 else f"eda: images {b + 1}/{n_batches}"
            for stats in parallel_map(fn, batch, workers=workers, desc=desc, progress=progress, chunksize=chunk):
                totals.add(stats)
    finally:
        cv2.setNumThreads(cv_threads)
    return totals.finish()

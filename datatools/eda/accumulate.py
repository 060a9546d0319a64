"""The one streaming pass: per-image facts are added up where they are made, in the workers.

Each worker folds a chunk of images into a :class:`Totals` (one small row per image and per annotation, and
sums for the arrays that do not belong to a row: heat maps, overlap matrices) and sends that; the parent
merges the chunks in image order. So memory does not grow with the number of images beyond the rows, and
the parent, which shares the cores with the workers, handles a few messages per worker instead of one per
image. Every sum is of integers, so the totals do not depend on how the images were chunked.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.issues import Issue
from datatools.core.parallel import default_workers, parallel_imap
from datatools.eda.lateral import SIDE_COLUMNS, image_sides
from datatools.eda.stats import ImageJob, ImageStats, StatsConfig, compared_policies, image_stats

__all__ = ["PIXEL_COLUMNS", "Totals", "chunk_totals", "run_pass"]

#: Columns of ``Totals.pixel_table`` (RGB on the 0..255 scale; NaN for images not decoded).
PIXEL_COLUMNS = ("mean_r", "mean_g", "mean_b", "std_r", "std_g", "std_b", "brightness", "contrast")


def _empty(shape: tuple[int, ...], dtype: type) -> npt.NDArray:  # type: ignore[type-arg]
    return np.zeros(shape, dtype=dtype)


@dataclass
class Totals:
    """What the pass learned, summed over images, plus one small row per image and per annotation.

    Attributes:
        n_classes: K.
        heat_size: side of the heat maps.
        policies: names of the overlap policies compared with the chosen one.
        heat: (K + 1, S, S) int64 summed coverage per class value; row 0 unused.
        sides: (K + 1, 5) int64 per class value: images holding it, and of those the ones where it sits on the
            image's left, right, top, bottom (:func:`datatools.eda.lateral.image_sides`); row 0 unused.
        pair_px: (K + 1, K + 1) int64 pixels claimed by two classes (upper triangle; the diagonal: by two
            annotations of the same class).
        class_px: (N, K + 2) int64 per-image pixel counts (background, 1..K, ignore).
        pixel_table: (N, 8) float64 per-image channel means, stds, brightness, contrast (:data:`PIXEL_COLUMNS`),
            NaN where the image was not decoded.
        overlap_rows: (N, 2 + P) int64 per image: overlap_px, conflict_px, then changed_px per policy.
        ann_px: (M,) int64 true pixel area of every annotation, in job order.
        ann_bbox_xywh: (M, 4) float64 every annotation's mask box, in job order.
        channel_sum: summed RGB values over every decoded pixel.
        channel_sumsq: summed squares.
        pixels: decoded pixels.
        issues: file problems found while reading.
        thumbnails: image position -> JPEG bytes.
        digests: image position -> digest of its pixels (only with ``StatsConfig.fingerprint``).
        phash: (N, 8) uint64 pHash of each image's flips/rotations (zeros where not read; N = 0 without
            ``StatsConfig.fingerprint``).
        fingerprints: whether ``digests`` and ``phash`` are kept (``StatsConfig.fingerprint``).
    """

    n_classes: int
    heat_size: int
    policies: tuple[str, ...]
    heat: npt.NDArray[np.int64]
    pair_px: npt.NDArray[np.int64]
    sides: npt.NDArray[np.int64] = field(default_factory=lambda: _empty((0, len(SIDE_COLUMNS)), np.int64))
    class_px: npt.NDArray[np.int64] = field(default_factory=lambda: _empty((0, 0), np.int64))
    pixel_table: npt.NDArray[np.float64] = field(default_factory=lambda: _empty((0, len(PIXEL_COLUMNS)), np.float64))
    overlap_rows: npt.NDArray[np.int64] = field(default_factory=lambda: _empty((0, 0), np.int64))
    ann_px: npt.NDArray[np.int64] = field(default_factory=lambda: _empty((0,), np.int64))
    ann_bbox_xywh: npt.NDArray[np.float64] = field(default_factory=lambda: _empty((0, 4), np.float64))
    channel_sum: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    channel_sumsq: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    pixels: int = 0
    issues: list[Issue] = field(default_factory=list)
    thumbnails: dict[int, bytes] = field(default_factory=dict)
    digests: dict[int, str] = field(default_factory=dict)
    phash: npt.NDArray[np.uint64] = field(default_factory=lambda: _empty((0, 8), np.uint64))
    fingerprints: bool = False
    _parts: dict[str, list[npt.NDArray]] = field(default_factory=dict, repr=False)  # type: ignore[type-arg]

    @classmethod
    def empty(cls, n_classes: int, heat_size: int, policies: Sequence[str], fingerprints: bool = False) -> Totals:
        k1 = n_classes + 1
        return cls(n_classes, heat_size, tuple(policies), np.zeros((k1, heat_size, heat_size), np.int64),
                   np.zeros((k1, k1), np.int64), np.zeros((k1, len(SIDE_COLUMNS)), np.int64),
                   fingerprints=fingerprints)

    def _append(self, name: str, block: npt.NDArray) -> None:  # type: ignore[type-arg]
        self._parts.setdefault(name, []).append(block)

    def add(self, stats: ImageStats) -> None:
        """Fold one image's facts in (call in image order)."""
        self._append("class_px", stats.class_px[None, :])
        for value, plane in zip(stats.heat_values, stats.heat, strict=True):
            self.heat[value] += plane
            self.sides[value] += image_sides(plane)
        for a, b, px in stats.pair_px:
            self.pair_px[a, b] += px
        self._append("overlap_rows", np.array([[stats.overlap_px, stats.conflict_px,
                                                *(stats.changed_px[p] for p in self.policies)]], np.int64))
        self._append("ann_px", np.asarray(stats.ann_px, dtype=np.int64))
        self._append("ann_bbox_xywh", np.asarray(stats.ann_bbox_xywh, dtype=np.float64).reshape(-1, 4))
        p = stats.pixels
        row = np.full((1, len(PIXEL_COLUMNS)), np.nan)
        if p is not None:
            row[0] = (*p.mean, *p.std, p.brightness, p.contrast)
            self.channel_sum += p.channel_sum
            self.channel_sumsq += p.channel_sumsq
            self.pixels += p.pixels
        self._append("pixel_table", row)
        if stats.issue is not None:
            self.issues.append(stats.issue)
        if stats.thumbnail is not None:
            self.thumbnails[stats.index] = stats.thumbnail
        if self.fingerprints:
            hashes: tuple[int, ...] = (0,) * 8
            if stats.fingerprint is not None:
                self.digests[stats.index], hashes = stats.fingerprint
            self._append("phash", np.array([hashes], dtype=np.uint64))

    def merge(self, other: Totals) -> None:
        """Fold in the finished totals of the images that follow (call in image order)."""
        self.heat += other.heat
        self.sides += other.sides
        self.pair_px += other.pair_px
        for name in ("class_px", "overlap_rows", "ann_px", "ann_bbox_xywh", "pixel_table"):
            self._append(name, getattr(other, name))
        self.channel_sum += other.channel_sum
        self.channel_sumsq += other.channel_sumsq
        self.pixels += other.pixels
        self.issues.extend(other.issues)
        self.thumbnails.update(other.thumbnails)
        self.digests.update(other.digests)
        if self.fingerprints:
            self._append("phash", other.phash)

    def finish(self) -> Totals:
        """Stack the rows added so far into the row arrays."""
        widths = {"class_px": (self.n_classes + 2,), "overlap_rows": (2 + len(self.policies),), "ann_px": (),
                  "ann_bbox_xywh": (4,), "pixel_table": (len(PIXEL_COLUMNS),), "phash": (8,)}
        for name, width in widths.items():
            parts = self._parts.pop(name, [])
            dtype = {"ann_bbox_xywh": np.float64, "pixel_table": np.float64, "phash": np.uint64}.get(name, np.int64)
            setattr(self, name, np.concatenate(parts) if parts else np.zeros((0, *width), dtype))
        return self

    def normalize_mean_std(self) -> tuple[list[float], list[float]] | None:
        """Dataset RGB mean and std over every decoded pixel, on the 0..1 scale (``A.Normalize`` with
        ``max_pixel_value=255``), or ``None`` when no image was decoded."""
        if not self.pixels:
            return None
        mean = self.channel_sum / self.pixels
        var = np.maximum(self.channel_sumsq / self.pixels - mean * mean, 0.0)
        return (mean / 255.0).tolist(), (np.sqrt(var) / 255.0).tolist()


def chunk_totals(jobs: Sequence[ImageJob], cfg: StatsConfig) -> Totals:
    """:func:`image_stats` of consecutive images, folded into finished totals (what a worker sends back)."""
    totals = Totals.empty(len(cfg.class_map), cfg.heat_size, [str(p) for p in compared_policies(cfg.overlap)],
                          cfg.fingerprint)
    for job in jobs:
        totals.add(image_stats(job, cfg))
    return totals.finish()


def run_pass(
    jobs: Sequence[ImageJob],
    cfg: StatsConfig,
    *,
    workers: int | None = None,
    progress: bool = True,
    chunk_size: int | None = None,
    on_start: Callable[[], object] | None = None,
) -> Totals:
    """Map :func:`image_stats` over the images in chunks and merge the chunks' totals as they arrive.

    Args:
        jobs: one job per image, in dataset order.
        cfg: shared settings.
        workers: processes (default: all cores).
        progress: show a progress bar (it advances a chunk at a time).
        chunk_size: images a worker folds together (default: about 32 chunks per worker, at most 16 images).
        on_start: called once, when the first chunk is back (the workers exist): work for this process to do
            while they run.

    Returns:
        The totals (``finish`` already called).

    Example:
        >>> totals = run_pass(jobs, StatsConfig("images/", ds.class_map(), OverlapPolicy()), workers=2)
        >>> totals.class_px.shape == (len(jobs), len(ds.class_map()) + 2)
        True
    """
    totals = Totals.empty(len(cfg.class_map), cfg.heat_size, [str(p) for p in compared_policies(cfg.overlap)],
                          cfg.fingerprint)
    n_workers = max(1, default_workers() if workers is None else workers)
    # small chunks, so no worker sits idle at the end; big enough that the parent has little to do per image
    size = chunk_size or max(1, min(16, len(jobs) // (n_workers * 32)))
    chunks = [jobs[i:i + size] for i in range(0, len(jobs), size)]
    # the processes already fill the cores: OpenCV's own threads would only contend with them (forked workers
    # inherit the setting; it is restored afterwards)
    cv_threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        for part in parallel_imap(partial(chunk_totals, cfg=cfg), chunks, workers=workers, desc="eda: images",
                                  progress=progress, chunksize=1):
            totals.merge(part)  # folded as it arrives: nothing but the rows is held
            if on_start is not None:
                on_start()
                on_start = None
    finally:
        cv2.setNumThreads(cv_threads)
    return totals.finish()

"""Mosaic: a grid of tiles (2x2 by default) from different images, cut around a random centre.

The grid lines are spread evenly and shifted together so that their middle falls on the sampled centre
(``center_range`` is a fraction of the output size). Each tile is a random crop of its own image; objects cut
below ``min_area`` pixels are dropped. Partners can favour rare classes (``prefer``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from datatools.augment._tiles import TileParams, apply_tiles, sample_tile
from datatools.augment.sampling import SourceIndex, choose_distinct, preferred_weights, resolve_classes
from datatools.augment.types import OutputPlan, Sample
from datatools.core.errors import InvalidDatasetError
from datatools.core.rarity import RARE_THRESHOLD

__all__ = ["MosaicConfig", "MosaicParams", "apply_mosaic", "grid_cuts", "plan_mosaic", "sample_mosaic_params"]

MosaicParams = TileParams


@dataclass(frozen=True)
class MosaicConfig:
    """Options of ``datatools augment mosaic``.

    Attributes:
        grid_hw: tiles per column and per row, e.g. ``(2, 2)`` or ``(3, 3)``.
        size_hw: output size; None: the size of the first source image.
        center_range: range of the grid centre, as a fraction of the output size (both axes).
        min_area: objects with fewer pixels after the cut are dropped.
        prefer: class names, or ``"auto"`` for the rare classes, whose images are favoured as tiles.
        prefer_boost: how much more likely an image holding a preferred class is picked.
        rare_threshold: ``auto``: a class is rare when fewer images hold it than this fraction of the images
            holding the most common class (:mod:`datatools.core.rarity`).
    """

    grid_hw: tuple[int, int] = (2, 2)
    size_hw: tuple[int, int] | None = None
    center_range: tuple[float, float] = (0.25, 0.75)
    min_area: int = 16
    prefer: str | tuple[str, ...] | None = None
    prefer_boost: float = 4.0
    rare_threshold: float = RARE_THRESHOLD

    def __post_init__(self) -> None:
        if not 0.0 <= self.rare_threshold <= 1.0:
            raise ValueError(f"rare_threshold must lie in [0, 1], got {self.rare_threshold:g}")
        gy, gx = self.grid_hw
        if gy < 1 or gx < 1 or gy * gx < 2:
            raise ValueError(f"grid_hw must have at least 2 tiles, e.g. (2, 2), got {self.grid_hw}")
        lo, hi = self.center_range
        g = max(gy, gx)
        if not (0.5 - 1 / g < lo <= hi < 0.5 + 1 / g) and g > 1:
            raise ValueError(f"center_range must lie strictly between {0.5 - 1 / g:g} and {0.5 + 1 / g:g} for a "
                             f"{gy}x{gx} grid (so that no tile is empty), got {lo:g},{hi:g}; e.g. "
                             f"{0.5 - 0.5 / g:g},{0.5 + 0.5 / g:g}")
        if self.size_hw is not None and (self.size_hw[0] < 2 * gy or self.size_hw[1] < 2 * gx):
            raise ValueError(f"size_hw {self.size_hw} is too small for a {gy}x{gx} grid")
        if self.min_area < 1:
            raise ValueError(f"min_area must be >= 1 pixel, got {self.min_area}")
        if self.prefer_boost <= 0:
            raise ValueError(f"prefer_boost must be > 0, got {self.prefer_boost}")


def grid_cuts(cells: int, size: int, center: float) -> list[int]:
    """Boundaries ``[0, c1, ..., size]`` of ``cells`` cells whose inner cuts are centred on ``center`` (a fraction).

    Example:
        >>> grid_cuts(2, 640, 0.3)
        [0, 192, 640]
    """
    shift = center - 0.5
    inner = [int(np.clip(round((k / cells + shift) * size), 1, size - 1)) for k in range(1, cells)]
    return [0, *inner, size]


def plan_mosaic(index: SourceIndex, config: MosaicConfig, count: int | None,
                rng: np.random.Generator) -> list[OutputPlan]:
    """``count`` outputs (default: one per source image), each from ``gy * gx`` different images."""
    n_tiles = config.grid_hw[0] * config.grid_hw[1]
    if len(index) < n_tiles:
        raise InvalidDatasetError(f"{index.source}: a {config.grid_hw[0]}x{config.grid_hw[1]} mosaic needs {n_tiles} "
                                  f"different images, only {len(index)} are selected")
    prefer = resolve_classes(config.prefer, index, config.rare_threshold)
    weights = preferred_weights(index, prefer, config.prefer_boost)
    n = len(index) if count is None else count
    return [OutputPlan(tuple(index.image_ids[i] for i in choose_distinct(rng, weights, n_tiles)))
            for _ in range(n)]


def sample_mosaic_params(rng: np.random.Generator, samples: Sequence[Sample], config: MosaicConfig,
                         choice: Mapping[str, Any]) -> TileParams:
    """Draw the centre, then a crop position for every tile (tile ``r * gx + c`` uses ``samples[r * gx + c]``).

    Example:
        >>> params = sample_mosaic_params(np.random.default_rng(0), four_samples, MosaicConfig(), {})
    """
    gy, gx = config.grid_hw
    if len(samples) != gy * gx:
        raise ValueError(f"a {gy}x{gx} mosaic needs {gy * gx} samples, got {len(samples)}")
    out_hw = config.size_hw or samples[0].size_hw
    cy, cx = (float(rng.uniform(*config.center_range)) for _ in range(2))
    ys, xs = grid_cuts(gy, out_hw[0], cy), grid_cuts(gx, out_hw[1], cx)
    tiles = tuple(
        sample_tile(rng, r * gx + c, samples[r * gx + c].size_hw, out_hw, (ys[r], xs[c], ys[r + 1], xs[c + 1]))
        for r in range(gy) for c in range(gx)
    )
    return TileParams(tuple(out_hw), tiles, config.min_area)  # type: ignore[arg-type]


def apply_mosaic(samples: Sequence[Sample], params: TileParams) -> Sample:
    """Cut the tiles into the output (see :func:`datatools.augment._tiles.apply_tiles`)."""
    return apply_tiles(samples, params)

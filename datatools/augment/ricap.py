"""RICAP (Takahashi et al. 2018): four crops from four different images, split at a point drawn from Beta(b, b).

The split ``(h, w)`` is ``(round(H * Beta(b, b)), round(W * Beta(b, b)))``, kept inside the image so that all four
crops are at least one pixel; each crop is cut at a random position of its own (covering-resized) image.
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

__all__ = ["RicapConfig", "RicapParams", "apply_ricap", "plan_ricap", "sample_ricap_params"]

RicapParams = TileParams


@dataclass(frozen=True)
class RicapConfig:
    """Options of ``datatools augment ricap``.

    Attributes:
        beta: the Beta(b, b) parameter of the split point (small values give unequal crops).
        size_hw: output size; None: the size of the first source image.
        min_area: objects with fewer pixels after the cut are dropped.
        prefer: class names, or ``"auto"``, whose images are favoured as partners.
        prefer_boost: how much more likely an image holding a preferred class is picked.
        rare_threshold: ``auto``: a class is rare when fewer images hold it than this fraction of the images
            holding the most common class (:mod:`datatools.core.rarity`).
    """

    beta: float = 0.3
    size_hw: tuple[int, int] | None = None
    min_area: int = 16
    prefer: str | tuple[str, ...] | None = None
    prefer_boost: float = 4.0
    rare_threshold: float = RARE_THRESHOLD

    def __post_init__(self) -> None:
        if not 0.0 <= self.rare_threshold <= 1.0:
            raise ValueError(f"rare_threshold must lie in [0, 1], got {self.rare_threshold:g}")
        if self.beta <= 0:
            raise ValueError(f"beta must be > 0, got {self.beta}")
        if self.size_hw is not None and min(self.size_hw) < 2:
            raise ValueError(f"size_hw must be at least (2, 2), got {self.size_hw}")
        if self.min_area < 1:
            raise ValueError(f"min_area must be >= 1 pixel, got {self.min_area}")


def plan_ricap(index: SourceIndex, config: RicapConfig, count: int | None,
               rng: np.random.Generator) -> list[OutputPlan]:
    """``count`` outputs (default: one per source image), each from 4 different images."""
    if len(index) < 4:
        raise InvalidDatasetError(f"{index.source}: RICAP needs 4 different images, only {len(index)} are selected")
    prefer = resolve_classes(config.prefer, index, config.rare_threshold)
    weights = preferred_weights(index, prefer, config.prefer_boost)
    n = len(index) if count is None else count
    return [OutputPlan(tuple(index.image_ids[i] for i in choose_distinct(rng, weights, 4))) for _ in range(n)]


def sample_ricap_params(rng: np.random.Generator, samples: Sequence[Sample], config: RicapConfig,
                        choice: Mapping[str, Any]) -> TileParams:
    """Draw the split point from Beta(b, b), then a crop position in each of the four images.

    Example:
        >>> params = sample_ricap_params(np.random.default_rng(0), four_samples, RicapConfig(beta=0.3), {})
    """
    if len(samples) != 4:
        raise ValueError(f"RICAP needs 4 samples, got {len(samples)}")
    out_h, out_w = config.size_hw or samples[0].size_hw
    split_w = int(np.clip(round(out_w * rng.beta(config.beta, config.beta)), 1, out_w - 1))
    split_h = int(np.clip(round(out_h * rng.beta(config.beta, config.beta)), 1, out_h - 1))
    cells = [(0, 0, split_h, split_w), (0, split_w, split_h, out_w),
             (split_h, 0, out_h, split_w), (split_h, split_w, out_h, out_w)]
    tiles = tuple(sample_tile(rng, i, samples[i].size_hw, (out_h, out_w), cell) for i, cell in enumerate(cells))
    return TileParams((out_h, out_w), tiles, config.min_area)


def apply_ricap(samples: Sequence[Sample], params: TileParams) -> Sample:
    """Cut the four crops into the output (see :func:`datatools.augment._tiles.apply_tiles`)."""
    return apply_tiles(samples, params)

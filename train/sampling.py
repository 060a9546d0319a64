"""Repeat-factor sampling (LVIS, Gupta et al. 2019): images holding rare classes are drawn more often.

Each class ``c`` with image share ``f_c`` (the fraction of training images holding at least one of its objects,
the statistic ``eda`` and ``augment`` count, :class:`datatools.augment.sampling.SourceIndex`) gets the repeat factor
``r_c = max(1, sqrt(t / f_c))``; an image gets the largest factor of the classes it holds (1 when it holds none).
Images are then drawn with probability ``r_i / sum(r)``.

The threshold ``t`` is an image share. By default it is the house definition of rare
(:data:`datatools.core.rarity.RARE_THRESHOLD` times the share of the most common class), so exactly the rare
classes are repeated.

The draws are low-discrepancy rather than independent: image ``i``'s ``j``-th draw is due at ``(j - 1/2) / p_i``
and the stream takes draws in the order they fall due (ties in a seeded random order); each epoch is the next
``len(dataset)`` draws of that stream, shuffled. After ``M`` draws every image has been drawn ``M p_i`` times rounded
(to within about half a draw; independent draws would be off by ``sqrt(M p_i)``), so the rare classes get their
share in every epoch, not only on average, and equal weights give every image once per epoch, like shuffling.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from datatools.augment.sampling import SourceIndex
from datatools.core.dataset import Dataset
from datatools.core.rarity import RARE_THRESHOLD

__all__ = ["RepeatFactorSampler", "RepeatFactors", "repeat_factors"]


@dataclass(frozen=True)
class RepeatFactors:
    """Per-image repeat factors over the concatenated images of the training datasets.

    Attributes:
        factors: ``r_i`` per image, in the order of the datasets' images.
        class_factors: category id -> ``r_c`` (classes no image holds are left out).
        class_shares: category id -> image share ``f_c``.
        threshold: the ``t`` used.
    """

    factors: npt.NDArray[np.float64]
    class_factors: dict[int, float]
    class_shares: dict[int, float]
    threshold: float

    @property
    def probabilities(self) -> npt.NDArray[np.float64]:
        """``r_i / sum(r)``: each image's expected share of the draws."""
        return self.factors / self.factors.sum()


def repeat_factors(datasets: Sequence[Dataset], threshold: float | None = None) -> RepeatFactors:
    """LVIS repeat factors of the images of ``datasets`` (the same class list), from their records.

    Args:
        datasets: the training datasets, in the order their images are concatenated.
        threshold: image-share threshold ``t`` in (0, 1]; None: ``RARE_THRESHOLD`` x the top class's share.

    Example:
        >>> rf = repeat_factors([Dataset.load("train.json", "images/")])
        >>> rf.class_factors
        {1: 1.01, 2: 1.0, 3: 1.0, 4: 1.0}
    """
    indexes = [SourceIndex.from_dataset(ds) for ds in datasets]
    n = sum(len(ix) for ix in indexes)
    counts: dict[int, int] = {}
    for ix in indexes:
        for c, k in ix.image_counts().items():
            counts[c] = counts.get(c, 0) + k
    shares = {c: k / n for c, k in counts.items() if k > 0} if n else {}
    t = float(threshold) if threshold is not None else RARE_THRESHOLD * max(shares.values(), default=0.0)
    class_factors = {c: max(1.0, math.sqrt(t / f)) for c, f in shares.items()}
    factors = [max((class_factors[c] for c in ix.classes_of[i]), default=1.0) for ix in indexes for i in ix.image_ids]
    return RepeatFactors(np.asarray(factors, dtype=np.float64), class_factors, shares, t)


class RepeatFactorSampler:
    """A torch sampler (``__iter__``, ``__len__``, ``set_epoch``) of ``len(weights)`` draws per epoch, each image
    drawn in proportion to its weight, low-discrepancy across epochs (module docstring).

    Example:
        >>> sampler = RepeatFactorSampler(repeat_factors([ds]).factors, seed=0)
        >>> sampler.set_epoch(1); order = list(sampler)
    """

    def __init__(self, weights: npt.ArrayLike, *, seed: int = 0, per_epoch: int | None = None) -> None:
        w = np.asarray(weights, dtype=np.float64)
        if w.ndim != 1 or not len(w) or (w <= 0).any():
            raise ValueError("repeat-factor weights must be a non-empty list of positive numbers")
        self.p = w / w.sum()
        self.seed = int(seed)
        self.per_epoch = int(per_epoch or len(w))
        self.epoch = 1
        self.tiebreak = np.random.default_rng([self.seed, 0]).permutation(len(w))

    def set_epoch(self, epoch: int) -> None:
        """Epoch ``epoch`` (1-based) takes draws ``(epoch - 1) * len .. epoch * len`` of the stream."""
        self.epoch = int(epoch)

    def stream(self, count: int) -> npt.NDArray[np.int64]:
        """The first ``count`` draws of the stream (image indices, in the order they fall due)."""
        if count <= 0:
            return np.zeros(0, dtype=np.int64)
        # image i's due times (j - phase_i) / p_i, j = 1..; enough of them to fill ``count`` draws with margin
        reps = np.ceil(count * self.p + 2).astype(np.int64)
        owner = np.repeat(np.arange(len(self.p)), reps)
        j = np.arange(len(owner)) - np.repeat(np.cumsum(reps) - reps, reps) + 1
        due = (j - 0.5) / self.p[owner]
        order = np.lexsort((self.tiebreak[owner], due))[:count]
        return owner[order].astype(np.int64)

    def __len__(self) -> int:
        return self.per_epoch

    def __iter__(self) -> Iterator[int]:
        start = (self.epoch - 1) * self.per_epoch
        draws = self.stream(start + self.per_epoch)[start:]
        np.random.default_rng([self.seed, self.epoch]).shuffle(draws)
        return iter(int(i) for i in draws)

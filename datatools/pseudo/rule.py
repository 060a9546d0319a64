"""The pseudo-label rule: which predicted pixels become labels, which become ignore.

Pure functions over numpy arrays, no I/O. Multiclass (softmax) probabilities ``(C, H, W)`` with background first:
a pixel gets its arg-max class when that class's probability reaches the class's threshold, else it is ignored.
Multilabel (sigmoid) probabilities ``(K, H, W)``: a plane is positive at ``p >= t``, negative at ``p <= 1 - t``,
and a pixel uncertain for any class is ignored. Connected components (8-connected) of a class smaller than
``min_area`` pixels become ignore, not background.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.classes import IGNORE_INDEX
from datatools.core.errors import DatatoolsError

__all__ = ["RuleConfig", "components", "decide_multiclass", "decide_multilabel"]


@dataclass(frozen=True)
class RuleConfig:
    """The thresholds of the rule.

    Attributes:
        threshold: a pixel's class must reach this probability (results files: an instance's score), in (0, 1].
        class_thresholds: ``(name, t)`` pairs overriding ``threshold`` for those classes (``background`` too).
        uncertain: results files only: instances scoring in ``[uncertain, threshold)`` become ignore regions (at
            most ``threshold``; checked where a results file is used).
        min_area: connected components of a class under this many pixels become ignore.
        min_confident: images whose share of non-ignored pixels is under this are skipped (listed in the summary).
    """

    threshold: float = 0.9
    class_thresholds: tuple[tuple[str, float], ...] = ()
    uncertain: float = 0.3
    min_area: int = 0
    min_confident: float = 0.0

    def __post_init__(self) -> None:
        for name, t in [("--threshold", self.threshold), *((f"--class-threshold {n}", t)
                                                           for n, t in self.class_thresholds)]:
            if not 0 < t <= 1:
                raise DatatoolsError(f"{name}: {t} is outside (0, 1]")
        if not 0 < self.uncertain <= 1:
            raise DatatoolsError(f"--uncertain: {self.uncertain} is outside (0, 1]")
        if self.min_area < 0:
            raise DatatoolsError(f"--min-area: {self.min_area} is negative")
        if not 0 <= self.min_confident <= 1:
            raise DatatoolsError(f"--min-confident: {self.min_confident} is outside [0, 1]")

    @classmethod
    def parse_class_thresholds(cls, specs: Sequence[str]) -> tuple[tuple[str, float], ...]:
        """``["Mask=0.8", "syringe=0.95"]`` -> ``(("Mask", 0.8), ("syringe", 0.95))``.

        Raises:
            DatatoolsError: a spec is not ``NAME=T`` with a number T.
        """
        out = []
        for spec in specs:
            name, sep, value = spec.rpartition("=")
            try:
                if not sep or not name:
                    raise ValueError
                out.append((name, float(value)))
            except ValueError:
                raise DatatoolsError(f"--class-threshold {spec!r}: write NAME=T, e.g. Mask=0.8") from None
        return tuple(out)

    def per_channel(self, names: Sequence[str]) -> npt.NDArray[np.float32]:
        """The threshold of each output channel named in ``names``.

        Raises:
            DatatoolsError: a ``class_thresholds`` name is not one of ``names``.
        """
        t = np.full(len(names), self.threshold, dtype=np.float32)
        for name, value in self.class_thresholds:
            hits = [i for i, n in enumerate(names) if n == name]
            if not hits:
                raise DatatoolsError(f"--class-threshold {name}: not a class of the predictions; known: "
                                     f"{', '.join(names)}")
            t[hits] = value
        return t


def components(mask: npt.NDArray[np.bool_]) -> list[npt.NDArray[np.bool_]]:
    """The 8-connected components of a mask, in raster order of their first pixel.

    Example:
        >>> m = np.zeros((4, 4), bool); m[0, 0] = m[3, 3] = True
        >>> len(components(m))
        2
    """
    if not mask.any():
        return []
    n, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    return [labels == k for k in range(1, n)]


def _small(mask: npt.NDArray[np.bool_], min_area: int) -> npt.NDArray[np.bool_]:
    """Pixels of the components of ``mask`` with fewer than ``min_area`` pixels."""
    if min_area <= 1 or not mask.any():
        return np.zeros(mask.shape, dtype=bool)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8, ltype=cv2.CV_32S)
    small = stats[:, cv2.CC_STAT_AREA] < min_area
    small[0] = False  # the background of the component labelling
    return cast("npt.NDArray[np.bool_]", small[labels])


def decide_multiclass(probs: npt.NDArray[np.floating], thresholds: npt.NDArray[np.float32],
                      min_area: int = 0) -> npt.NDArray[np.uint8]:
    """Multiclass pseudo labels: (H, W) uint8, 0 background, 1..K classes, 255 ignore.

    Args:
        probs: (C, H, W) softmax probabilities, channel 0 background.
        thresholds: (C,) the threshold of each channel.
        min_area: foreground components under this many pixels become ignore.

    Example:
        >>> p = np.array([[[0.95, 0.4]], [[0.05, 0.6]]], np.float32)
        >>> decide_multiclass(p, np.array([0.9, 0.9], np.float32)).tolist()
        [[0, 255]]
    """
    best = probs.argmax(axis=0)
    top = np.take_along_axis(probs, best[None], axis=0)[0]
    labels = np.where(top >= thresholds[best], best, IGNORE_INDEX).astype(np.uint8)
    if min_area > 1:
        for value in range(1, probs.shape[0]):
            labels[_small(labels == value, min_area)] = IGNORE_INDEX
    return labels


def decide_multilabel(probs: npt.NDArray[np.floating], thresholds: npt.NDArray[np.float32],
                      min_area: int = 0) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_]]:
    """Multilabel pseudo labels: ``(positive (K, H, W) bool, ignore (H, W) bool)``; no positive pixel is ignored.

    Args:
        probs: (K, H, W) sigmoid probabilities.
        thresholds: (K,) the threshold of each class: positive at ``p >= t``, negative at ``p <= 1 - t``.
        min_area: positive components under this many pixels make their pixels ignore.

    Example:
        >>> pos, ign = decide_multilabel(np.array([[[0.95, 0.5, 0.02]]], np.float32), np.array([0.9], np.float32))
        >>> pos.tolist(), ign.tolist()
        ([[[True, False, False]]], [[False, True, False]])
    """
    t = thresholds.reshape(-1, 1, 1)
    positive = probs >= t
    uncertain = ~positive & (probs > 1 - t)
    ignore: npt.NDArray[np.bool_] = np.asarray(uncertain.any(axis=0), dtype=bool)
    if min_area > 1:
        for k in range(positive.shape[0]):
            ignore |= _small(positive[k], min_area)
    positive &= ~ignore
    return positive, ignore

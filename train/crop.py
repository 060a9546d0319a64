"""``fit --crop SIZE [--crop-rare P]``: train on random full-resolution crops instead of whole resized images.

Each training sample is a ``SIZE x SIZE`` window of the image and its mask at full resolution (an image smaller than
``SIZE`` along an axis is padded on its bottom / right: image with 0, mask with the ignore value 255, so the padding
adds nothing to the loss). With probability ``P`` the window is centred on a pixel of a rare class the image holds
(a rare class drawn uniformly among those present, then one of its pixels uniformly; the window is shifted inside
the image where the centre is too close to an edge, so it still holds that pixel); otherwise it lies anywhere,
uniformly. "Rare" is the house rule (:mod:`datatools.core.rarity`) over the images' class counts, the statistic
repeat-factor sampling uses (:mod:`train.sampling`).

Draws are seeded per item: the ``k``-th crop of item ``i`` in DataLoader worker ``w`` (0: the main process) comes from
``default_rng([seed, i, k, w])``, so a run with the same ``--seed`` (and ``--workers``) takes the same crops, and two
persistent workers that each meet an item for the ``k``-th time take different crops of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.augment.sampling import SourceIndex
from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.dataset import Dataset
from datatools.core.rarity import rare_classes

__all__ = ["RandomCrop", "rare_values"]


def rare_values(datasets: Sequence[Dataset], class_map: ClassMap) -> frozenset[int]:
    """Mask values (1..K) of the rare classes over the images of ``datasets`` (the same class list).

    Example:
        >>> rare_values([Dataset.load("train.json", "images/")], ds.class_map())
        frozenset({1})
    """
    counts: dict[int, int] = {}
    for ds in datasets:
        for c, k in SourceIndex.from_dataset(ds).image_counts().items():
            counts[c] = counts.get(c, 0) + k
    return frozenset(class_map.value_of(c) for c in rare_classes(counts).rare)


class RandomCrop:
    """``(image, mask, index) -> (image, mask)`` crops of ``size`` (module docstring).

    Args:
        size: side of the crops.
        rare: mask values of the rare classes (multilabel: plane ``v - 1`` holds value ``v``).
        p_rare: probability of a crop centred on a rare pixel, when the image holds one.
        seed: the run's seed.
        first_draw: ``k`` of each item's first crop (a resumed run starts at the epochs done).

    Example:
        >>> crop = RandomCrop(512, frozenset({3}), 0.5, seed=0)
        >>> image, mask = crop(image, mask, index=7)
    """

    def __init__(self, size: int, rare: frozenset[int] = frozenset(), p_rare: float = 0.0, *, seed: int = 0,
                 first_draw: int = 0) -> None:
        if size < 1 or not 0.0 <= p_rare <= 1.0:
            raise ValueError(f"a crop side >= 1 and a probability in [0, 1], got {size} and {p_rare:g}")
        self.size, self.rare, self.p_rare, self.seed = int(size), frozenset(int(v) for v in rare), p_rare, int(seed)
        self.first_draw = int(first_draw)
        self._draws: dict[int, int] = {}

    def _rare_pixels(self, mask: npt.NDArray[np.uint8], rng: np.random.Generator) -> tuple[int, int] | None:
        """A pixel of a rare class present in ``mask`` (a class first, then a pixel), or None."""
        present = []
        for v in sorted(self.rare):
            plane = mask == v if mask.ndim == 2 else (mask[..., v - 1] == 1 if v - 1 < mask.shape[-1] else None)
            if plane is not None and plane.any():
                present.append(plane)
        if not present:
            return None
        ys, xs = np.nonzero(present[int(rng.integers(len(present)))])
        k = int(rng.integers(len(ys)))
        return int(ys[k]), int(xs[k])

    def window(self, mask: npt.NDArray[np.uint8], index: int) -> tuple[int, int]:
        """The top-left corner of item ``index``'s next crop in its (padded) mask; counts the draw."""
        k = self._draws.get(index, self.first_draw)
        self._draws[index] = k + 1
        rng = np.random.default_rng([self.seed, int(index), k, _worker()])
        h, w = max(mask.shape[0], self.size), max(mask.shape[1], self.size)
        if self.rare and rng.random() < self.p_rare:
            centre = self._rare_pixels(mask, rng)
            if centre is not None:
                y, x = centre
                half = self.size // 2
                return min(max(y - half, 0), h - self.size), min(max(x - half, 0), w - self.size)
        return int(rng.integers(h - self.size + 1)), int(rng.integers(w - self.size + 1))

    def __call__(self, image: npt.NDArray[np.uint8], mask: npt.NDArray[np.uint8], index: int
                 ) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        y, x = self.window(mask, index)
        image, mask = _pad(image, self.size, 0), _pad(mask, self.size, IGNORE_INDEX)
        s = self.size
        return (np.ascontiguousarray(image[y:y + s, x:x + s]), np.ascontiguousarray(mask[y:y + s, x:x + s]))


def _worker() -> int:
    """The DataLoader worker this runs in, 1-based (0 in the main process): each worker counts its own draws."""
    from torch.utils.data import get_worker_info

    info = get_worker_info()
    return 0 if info is None else int(info.id) + 1


def _pad(array: npt.NDArray[Any], size: int, value: int) -> npt.NDArray[Any]:
    """``array`` padded on its bottom / right to at least ``size`` along its first two axes."""
    dh, dw = max(0, size - array.shape[0]), max(0, size - array.shape[1])
    if not dh and not dw:
        return array
    return np.pad(array, [(0, dh), (0, dw)] + [(0, 0)] * (array.ndim - 2), constant_values=value)

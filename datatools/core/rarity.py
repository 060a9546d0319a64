"""What "rare" means, in one place: for ``eda`` (its report and summary) and for ``augment`` (``copy-paste --rare
auto``, ``mosaic`` / ``ricap --prefer auto``).

A class is **rare** when fewer images hold it than ``threshold`` times the number of images holding the most
common class (default :data:`RARE_THRESHOLD`). A class that no image holds (a placeholder category without
annotations) is **absent**, never rare.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["RARE_HELP", "RARE_THRESHOLD", "Rarity", "rare_classes", "rare_rule"]

K = TypeVar("K", bound=Hashable)

#: the default threshold, the same for every command
RARE_THRESHOLD = 0.8

#: the ``--rare-threshold`` help of every command that takes it
RARE_HELP = ("A class is rare when fewer images hold it than this fraction of the images holding the most common "
             "class; a class no image holds is absent, not rare.")


def rare_rule(threshold: float) -> str:
    """The definition in words, for reports and messages.

    Example:
        >>> rare_rule(0.8)
        'held by fewer images than 0.8 x the images holding the most common class'
    """
    return f"held by fewer images than {threshold:g} x the images holding the most common class"


@dataclass(frozen=True)
class Rarity(Generic[K]):
    """The rare and the absent classes of a dataset (keys in the order given).

    Attributes:
        threshold: the fraction used.
        rare: classes held by fewer images than ``threshold`` x the most common class's images.
        absent: classes no image holds.
    """

    threshold: float
    rare: tuple[K, ...]
    absent: tuple[K, ...]

    @property
    def rule(self) -> str:
        """:func:`rare_rule` of the threshold."""
        return rare_rule(self.threshold)


def rare_classes(image_counts: Mapping[K, int], threshold: float = RARE_THRESHOLD) -> Rarity[K]:
    """The rare and the absent classes, from the number of images holding each class.

    Args:
        image_counts: class (category id, mask value or name) -> images holding it.
        threshold: fraction of the most common class's image count, in [0, 1].

    Raises:
        ValueError: ``threshold`` outside [0, 1].

    Example:
        >>> r = rare_classes({0: 0, 1: 210, 2: 262, 3: 259, 4: 268})
        >>> r.rare, r.absent
        ((1,), (0,))
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"the rare threshold must lie in [0, 1], got {threshold:g}")
    top = max(image_counts.values(), default=0)
    rare = tuple(c for c, n in image_counts.items() if 0 < n < threshold * top)
    absent = tuple(c for c, n in image_counts.items() if n <= 0)
    return Rarity(float(threshold), rare, absent)

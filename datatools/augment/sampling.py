"""Choosing source images (a fold's training images) and rare-class donors from the records alone (no pixels are
read here).

The class statistics are image shares: the fraction of images holding at least one object of a class.
``--rare auto`` picks the rare classes (:mod:`datatools.core.rarity`: held by fewer images than ``rare_threshold``
times the images of the most common class); ``--prefer`` makes images holding those classes more likely partners.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.augment.types import OutputPlan
from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError, InvalidDatasetError
from datatools.core.folds_table import fold_image_ids, read_folds_for
from datatools.core.rarity import RARE_THRESHOLD, Rarity, rare_classes

__all__ = [
    "AUTO",
    "SourceIndex",
    "choose_distinct",
    "class_shares",
    "index_rarity",
    "plan_donor_pastes",
    "plan_each_source",
    "plan_rare_pastes",
    "preferred_weights",
    "resolve_classes",
    "select_sources",
    "under_target",
]

#: the value of ``--rare`` / ``--prefer`` that picks the rare classes from the class statistics
AUTO = "auto"


@dataclass(frozen=True)
class SourceIndex:
    """What planning needs to know about the source images, built from records.

    Attributes:
        image_ids: the source image ids, in file order.
        classes_of: image id -> the category ids of its (non-crowd) objects.
        objects_of_class: category id -> ``(image id, annotation id)`` of every non-crowd object of that class.
        names: category id -> name, in category order.
        source: the annotation file, for messages.
    """

    image_ids: tuple[Any, ...]
    classes_of: Mapping[Any, frozenset[int]]
    objects_of_class: Mapping[int, tuple[tuple[Any, Any], ...]]
    names: Mapping[int, str]
    source: str = "dataset"

    @classmethod
    def from_dataset(cls, ds: Dataset) -> SourceIndex:
        """Index the images of ``ds`` (all of them; subset the dataset first to restrict).

        Example:
            >>> index = SourceIndex.from_dataset(Dataset.load("train.json", "images/"))
            >>> len(index.image_ids)
        """
        ids = tuple(img["id"] for img in ds.images)
        known = set(ids)
        classes: dict[Any, set[int]] = {i: set() for i in ids}
        objects: dict[int, list[tuple[Any, Any]]] = {int(c["id"]): [] for c in ds.categories}
        for ann in ds.annotations:
            if ann["image_id"] not in known or ann.get("iscrowd", 0):
                continue
            classes[ann["image_id"]].add(int(ann["category_id"]))
            objects[int(ann["category_id"])].append((ann["image_id"], ann["id"]))
        return cls(ids, {i: frozenset(c) for i, c in classes.items()},
                   {c: tuple(o) for c, o in objects.items()},
                   {int(c["id"]): str(c["name"]) for c in ds.categories}, str(ds.source or "dataset"))

    def __len__(self) -> int:
        return len(self.image_ids)

    def image_counts(self) -> dict[int, int]:
        """category id -> number of source images holding the class."""
        counts = dict.fromkeys(self.names, 0)
        for cats in self.classes_of.values():
            for c in cats:
                counts[c] += 1
        return counts


def class_shares(counts: Mapping[int, int], n_images: int) -> dict[int, float]:
    """category id -> image share (``count / n_images``).

    Example:
        >>> class_shares({1: 5, 2: 10}, 20)
        {1: 0.25, 2: 0.5}
    """
    return {c: (k / n_images if n_images else 0.0) for c, k in counts.items()}


def index_rarity(index: SourceIndex, threshold: float = RARE_THRESHOLD) -> Rarity[int]:
    """The rare and absent classes (category ids) of the source images, by the one definition
    (:func:`datatools.core.rarity.rare_classes`) on the images holding a copyable (non-crowd) object.

    Example:
        >>> index_rarity(SourceIndex.from_dataset(ds)).rare
        (1,)
    """
    return rare_classes(index.image_counts(), threshold)


def resolve_classes(spec: str | Sequence[str] | None, index: SourceIndex, threshold: float) -> tuple[int, ...]:
    """Category ids from ``"auto"``, a comma-separated string or a list of names (a name shared by two
    categories gives both); None gives ().

    Raises:
        InvalidDatasetError: a name is not a category, or a listed class has no object to copy.
    """
    if spec is None or spec == "" or (not isinstance(spec, str) and not spec):
        return ()
    if isinstance(spec, str) and spec.strip().lower() == AUTO:
        return index_rarity(index, threshold).rare
    names = [n.strip() for n in spec.split(",")] if isinstance(spec, str) else [str(n).strip() for n in spec]
    out: list[int] = []
    for name in filter(None, names):
        ids = [c for c, n in index.names.items() if n == name]
        if not ids:
            raise InvalidDatasetError(f"{index.source}: class {name!r} is not a category; known: "
                                      f"{sorted(set(index.names.values()))}")
        out += [c for c in ids if c not in out]
    return tuple(out)


def preferred_weights(index: SourceIndex, prefer: Sequence[int], boost: float) -> npt.NDArray[np.float64]:
    """Sampling weight per source image: ``boost`` for images holding a preferred class, 1 otherwise.

    Example:
        >>> w = preferred_weights(index, (1,), 4.0)   # images with class 1 are 4x as likely
    """
    wanted = set(prefer)
    return np.array([boost if index.classes_of[i] & wanted else 1.0 for i in index.image_ids], dtype=np.float64)


def choose_distinct(rng: np.random.Generator, weights: npt.NDArray[np.float64], k: int) -> list[int]:
    """``k`` distinct positions drawn with probability proportional to ``weights``.

    Raises:
        InvalidDatasetError: fewer than ``k`` positions.
    """
    if len(weights) < k:
        raise InvalidDatasetError(f"needs {k} different source images, but only {len(weights)} are available")
    return [int(i) for i in rng.choice(len(weights), size=k, replace=False, p=weights / weights.sum())]


def plan_donor_pastes(
    rng: np.random.Generator,
    index: SourceIndex,
    classes: Sequence[int],
    first_class: int,
    n_objects: int,
    target: Any,
) -> list[tuple[Any, Any, int]]:
    """``n_objects`` donor objects ``(image id, annotation id, category id)``: the first of ``first_class``, the
    others of any of ``classes``; objects of the target image itself are used only when nothing else exists.

    Example:
        >>> plan_donor_pastes(np.random.default_rng(0), index, (1, 3), 1, 2, target=17)
        [(4, 40, 1), (9, 95, 3)]
    """
    picks: list[tuple[Any, Any, int]] = []
    for k in range(n_objects):
        cls = first_class if k == 0 else int(classes[int(rng.integers(len(classes)))])
        taken = {(i, a) for i, a, _ in picks}
        objects = [o for o in index.objects_of_class.get(cls, ()) if o not in taken]
        pool = [o for o in objects if o[0] != target] or objects
        if pool:
            image_id, ann_id = pool[int(rng.integers(len(pool)))]
            picks.append((image_id, ann_id, cls))
    return picks


def plan_each_source(index: SourceIndex, choices: Sequence[Mapping[str, Any]], count: int | None,
                     rng: np.random.Generator) -> list[OutputPlan]:
    """One output per source image and choice, in source order; ``count`` below that keeps a random subset
    (still in order), above it cycles through them again.

    Example:
        >>> plans = plan_each_source(index, [{"direction": "h"}, {"direction": "v"}], None, rng)
        >>> len(plans) == 2 * len(index)
        True
    """
    pairs = [(i, c) for i in index.image_ids for c in choices]
    if count is not None and count < len(pairs):
        pairs = [pairs[k] for k in sorted(rng.choice(len(pairs), size=count, replace=False).tolist())]
    elif count is not None:
        pairs = [pairs[k % len(pairs)] for k in range(count)]
    return [OutputPlan((i,), choice=dict(c)) for i, c in pairs]


def under_target(count: int, n_images: int, target_share: float | None, target_images: int | None) -> bool:
    """Whether a class held by ``count`` of ``n_images`` images is still under the target."""
    if target_share is not None:
        return count < target_share * n_images - 1e-9
    return count < (target_images or 0)


def plan_rare_pastes(
    rng: np.random.Generator,
    index: SourceIndex,
    classes: Sequence[int],
    objects_range: tuple[int, int],
    *,
    count: int | None,
    target_share: float | None = None,
    target_images: int | None = None,
    counts: Mapping[int, int] | None = None,
    n_images: int | None = None,
) -> list[tuple[Any, list[tuple[Any, Any, int]]]]:
    """Plan copy-paste outputs: ``[(target image id, [(donor image id, annotation id, category id), ...]), ...]``.

    Each output pastes objects of the chosen class held by the fewest images (so far, counting the planned
    outputs), onto a uniformly drawn target image. Without a target, ``count`` outputs are planned (default:
    one per source image); with ``target_share`` (or ``target_images``) outputs are planned until every chosen
    class is expected to reach it, counting the source images plus the outputs, at most ``count``.

    Args:
        rng: the planning generator.
        index: the source images.
        classes: category ids to paste (each must have objects).
        objects_range: ``(min, max)`` objects pasted per output.
        count: number of outputs, or the most outputs when a target is given.
        target_share: image share each chosen class should reach.
        target_images: number of images each chosen class should reach.
        counts: images per class so far (default: the source images').
        n_images: images so far (default: the number of source images).

    Example:
        >>> plan = plan_rare_pastes(np.random.default_rng(0), index, (1,), (1, 3), count=None, target_share=0.5)
    """
    counts = dict(index.image_counts() if counts is None else counts)
    n = len(index) if n_images is None else n_images
    targeted = target_share is not None or target_images is not None
    limit = count if count is not None else (None if targeted else len(index))
    plans: list[tuple[Any, list[tuple[Any, Any, int]]]] = []
    while limit is None or len(plans) < limit:
        pool = [c for c in classes if under_target(counts.get(c, 0), n, target_share, target_images)] \
            if targeted else list(classes)
        if not pool:
            break
        cls = min(pool, key=lambda c: (counts.get(c, 0), classes.index(c)))
        target = index.image_ids[int(rng.integers(len(index)))]
        k = int(rng.integers(objects_range[0], objects_range[1] + 1))
        picks = plan_donor_pastes(rng, index, classes, cls, k, target)
        plans.append((target, picks))
        for c in set(index.classes_of[target]) | {p[2] for p in picks}:
            counts[c] = counts.get(c, 0) + 1
        n += 1
    return plans


def select_sources(ds: Dataset, folds: str | os.PathLike[str] | None, fold: int | None, *,
                   partial: bool = False) -> Dataset:
    """The dataset, or only the TRAINING images of fold ``fold`` of the folds table ``folds``.

    Raises:
        DatatoolsError: only one of ``folds`` and ``fold`` is given.
        InvalidDatasetError: the table does not belong to ``ds`` (see
            :func:`datatools.core.folds_table.check_belongs`; ``partial`` allows part of it), or the fold keeps no
            image.

    Example:
        >>> train_only = select_sources(ds, "folds.parquet", 0)
    """
    if folds is None and fold is None:
        return ds
    if folds is None or fold is None:
        raise DatatoolsError("give --folds and --fold together")
    train_ids, _ = fold_image_ids(read_folds_for(folds, ds, partial=partial), fold, folds)
    selected = ds.subset(train_ids)
    if not selected.images:
        raise InvalidDatasetError(f"{folds}: fold {fold} leaves no training image of {ds.source}")
    return selected

"""Multilabel, group-aware k-fold assignment: iterative stratification over group label vectors.

The kernel is Sechidis, Tsoumakas and Vlahavas's iterative stratification (ECML PKDD 2011), the algorithm of
the ``iterative-stratification`` package, generalised to weighted items so that whole groups can be placed:

1. every fold wants ``1/k`` of each label's total weight and ``1/k`` of the images;
2. take the label held by the fewest unplaced groups (ties at random);
3. place each unplaced group holding it (largest groups first) in the fold that still wants most of that label,
   ties to the fold that wants most images, then at random; subtract the group's label vector and size;
4. repeat; groups without labels fill the folds that want most images.

The package works on single images with 0/1 labels; here a group's vector is the sum over its images (images
holding the class, instances or pixels) and its size its number of images. Then a repair step moves groups so that
every class held by at least ``k`` groups is in every validation fold, when that is possible without emptying
another fold of a class; otherwise the class is named in a warning.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from datatools.core.errors import DatatoolsError
from datatools.folds.refine import refine_folds

__all__ = ["GroupSplit", "coverage_repair", "iterative_stratification", "split_groups"]


def _pick(candidates: npt.NDArray[np.intp], rng: np.random.Generator) -> int:
    return int(candidates[0] if len(candidates) == 1 else candidates[rng.integers(len(candidates))])


def iterative_stratification(
    labels: npt.NDArray[np.floating] | npt.NDArray[np.integer] | npt.NDArray[np.bool_],
    k: int,
    *,
    sizes: npt.NDArray[np.floating] | npt.NDArray[np.integer] | None = None,
    rng: np.random.Generator | int | None = None,
) -> npt.NDArray[np.int64]:
    """Assign items (images or groups) with non-negative label vectors to ``k`` folds.

    Args:
        labels: (N, L) label weights per item (0/1, counts, or pixels); an item "holds" a label where > 0.
        k: number of folds.
        sizes: (N,) item sizes (images per group); default 1.
        rng: a Generator or a seed; ties are broken with it, so a seed gives one answer.

    Returns:
        (N,) fold of each item, 0..k-1.

    Example:
        >>> y = np.array([[1, 0], [1, 0], [0, 1], [0, 1], [1, 1], [0, 0]])
        >>> folds = iterative_stratification(y, 2, rng=0)
        >>> sorted(np.bincount(folds).tolist())
        [3, 3]
    """
    rng = np.random.default_rng(rng)
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 2:
        raise ValueError(f"labels must have shape (N, L), but got shape {y.shape}")
    if (y < 0).any() or not np.isfinite(y).all():
        raise ValueError("labels must be finite and non-negative")
    n = y.shape[0]
    size = np.ones(n) if sizes is None else np.asarray(sizes, dtype=np.float64)
    if size.shape != (n,):
        raise ValueError(f"sizes must have shape ({n},), but got shape {size.shape}")
    held = y > 0
    wanted = np.tile(y.sum(axis=0) / k, (k, 1))  # (k, L) weight each fold still wants
    capacity = np.full(k, size.sum() / k)  # images each fold still wants
    remaining = held.sum(axis=0).astype(np.int64)  # unplaced items holding each label
    folds = np.full(n, -1, dtype=np.int64)

    perm = rng.permutation(n)
    order = perm[np.argsort(-size[perm], kind="stable")]  # big groups first, random among equals
    label_of, position = np.nonzero(held[order].T)  # per label, its items in processing order
    bounds = np.concatenate([[0], np.cumsum(np.bincount(label_of, minlength=y.shape[1]))])
    items_of = order[position]

    while True:
        live = remaining > 0
        if not live.any():
            break
        fewest = remaining[live].min()
        label = _pick(np.flatnonzero(remaining == fewest), rng)
        for item in items_of[bounds[label]:bounds[label + 1]].tolist():
            if folds[item] >= 0:
                continue
            want = wanted[:, label]
            best = np.flatnonzero(want == want.max())
            if len(best) > 1:
                cap = capacity[best]
                best = best[cap == cap.max()]
            fold = _pick(best, rng)
            folds[item] = fold
            wanted[fold] -= y[item]
            capacity[fold] -= size[item]
            remaining -= held[item]
    for item in order[folds[order] < 0].tolist():
        fold = _pick(np.flatnonzero(capacity == capacity.max()), rng)
        folds[item] = fold
        capacity[fold] -= size[item]
    return folds


def coverage_repair(
    held: npt.NDArray[np.bool_],
    folds: npt.NDArray[np.int64],
    k: int,
    *,
    sizes: npt.NDArray[np.floating] | npt.NDArray[np.integer] | None = None,
    required: npt.NDArray[np.bool_] | None = None,
) -> tuple[npt.NDArray[np.int64], list[int]]:
    """Move items so that every required label is held by at least one item of every fold.

    A label missing from fold ``f`` gets an item holding it from a fold that has two or more such items, chosen so
    that its old fold keeps every required label it holds; then an item of about the same size goes back the other
    way if that loses no required label either, to keep fold sizes. No move ever uncovers a label.

    Args:
        held: (N, L) bool, items holding each label.
        folds: (N,) fold of each item.
        k: number of folds.
        sizes: (N,) item sizes (default 1).
        required: (L,) labels to cover (default: those held by at least ``k`` items).

    Returns:
        ``(new folds, labels that could not be covered)``.

    Example:
        >>> held = np.array([[1], [1], [0], [0]], dtype=bool)
        >>> coverage_repair(held, np.array([0, 0, 1, 1]), 2)[0].tolist()
        [1, 0, 0, 1]
    """
    folds = np.array(folds, dtype=np.int64)
    n, n_labels = held.shape
    size = np.ones(n) if sizes is None else np.asarray(sizes, dtype=np.float64)
    need = held.sum(axis=0) >= k if required is None else np.asarray(required, dtype=bool)
    count = np.zeros((k, n_labels), dtype=np.int64)
    np.add.at(count, folds, held.astype(np.int64))
    fold_size = np.bincount(folds, weights=size, minlength=k).astype(np.float64)
    uncovered: list[int] = []
    rarest_first = sorted(np.flatnonzero(need).tolist(), key=lambda lab: (int(held[:, lab].sum()), lab))
    needed_held = held & need  # what an item's fold must keep when it leaves

    def can_leave(item: int, fold: int) -> bool:
        return bool((count[fold, needed_held[item]] >= 2).all())

    for label in rarest_first:
        for fold in np.flatnonzero(count[:, label] == 0).tolist():
            donors = [i for i in np.flatnonzero(held[:, label] & (folds != fold)).tolist()
                      if count[folds[i], label] >= 2 and can_leave(i, int(folds[i]))]
            if not donors:
                uncovered.append(label)
                break
            item = min(donors, key=lambda i: (-fold_size[folds[i]], size[i], i))  # from the biggest fold
            source = int(folds[item])
            _move(item, fold, folds, count, fold_size, held, size)
            back = [i for i in np.flatnonzero(folds == fold).tolist() if i != item and can_leave(i, fold)]
            if back and fold_size[fold] - fold_size[source] > 0:
                gap = fold_size[fold] - fold_size[source]
                best = min(back, key=lambda i: (abs(gap - 2 * size[i]), i))
                if abs(gap - 2 * size[best]) < gap:
                    _move(best, source, folds, count, fold_size, held, size)
    return folds, sorted(set(uncovered))


def _move(item: int, to: int, folds: npt.NDArray[np.int64], count: npt.NDArray[np.int64],
          fold_size: npt.NDArray[np.float64], held: npt.NDArray[np.bool_], size: npt.NDArray[np.float64]) -> None:
    source = folds[item]
    count[source] -= held[item]
    count[to] += held[item]
    fold_size[source] -= size[item]
    fold_size[to] += size[item]
    folds[item] = to


@dataclass(frozen=True)
class GroupSplit:
    """The outcome of :func:`split_groups`.

    Attributes:
        folds: (N,) fold of each image.
        n_groups: number of groups.
        warnings: one line per class that cannot be in every validation fold, naming it.
    """

    folds: npt.NDArray[np.int64]
    n_groups: int
    warnings: list[str] = field(default_factory=list)


def _group_sums(values: npt.NDArray[np.float64], codes: npt.NDArray[np.int64], n_groups: int
                ) -> npt.NDArray[np.float64]:
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0])
    out = np.zeros((n_groups, values.shape[1]), dtype=np.float64)
    if len(order):
        out[codes[order][starts]] = np.add.reduceat(values[order], starts, axis=0)
    return out


def split_groups(
    weights: npt.NDArray[np.floating],
    presence: npt.NDArray[np.bool_],
    groups: npt.NDArray[np.int64],
    k: int,
    *,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    refine: bool = True,
) -> GroupSplit:
    """Split images into ``k`` folds, never splitting a group, balancing ``weights`` per class.

    Args:
        weights: (N, K) what to balance per image and class (presence 0/1, instances, pixels).
        presence: (N, K) bool, the image holds the class (decides coverage).
        groups: (N,) group code of each image, 0..G-1.
        k: number of folds (at least 2, at most the number of groups).
        seed: seed of the tie-breaking; the same inputs and seed give the same folds.
        class_names: names used in warnings (default ``class 0``, ...).
        refine: polish the iterative stratification with :func:`~datatools.folds.refine.refine_folds`.

    Returns:
        The folds of the images and the warnings.

    Raises:
        DatatoolsError: fewer groups than folds.

    Example:
        >>> y = np.eye(3, dtype=bool)[[0, 0, 1, 1, 2, 2]]
        >>> folds = split_groups(y.astype(float), y, np.array([0, 0, 1, 2, 3, 4]), 2).folds
        >>> bool(folds[0] == folds[1])  # images 0 and 1 are one group
        True
    """
    groups = np.asarray(groups, dtype=np.int64)
    n_groups = int(groups.max()) + 1 if len(groups) else 0
    if k < 2:
        raise DatatoolsError(f"k must be at least 2, got {k}")
    if n_groups < k:
        raise DatatoolsError(f"{n_groups} group(s) cannot make {k} folds; lower k or group less")
    names = list(class_names) if class_names is not None else [f"class {i}" for i in range(presence.shape[1])]
    rng = np.random.default_rng(seed)
    group_weights = _group_sums(np.asarray(weights, dtype=np.float64), groups, n_groups)
    group_held = _group_sums(presence.astype(np.float64), groups, n_groups) > 0
    sizes = np.bincount(groups, minlength=n_groups)
    group_folds = iterative_stratification(group_weights, k, sizes=sizes, rng=rng)
    holders = group_held.sum(axis=0)
    group_folds, uncovered = coverage_repair(group_held, group_folds, k, sizes=sizes, required=holders >= k)
    if refine:
        group_folds = refine_folds(group_weights, group_held, sizes, group_folds, k, required=holders > 0,
                                   variance=np.asarray(weights, dtype=np.float64).var(axis=0), rng=rng)
    unit = "images" if n_groups == len(groups) else "groups"
    notes = [f"class {names[c]!r} is in only {holders[c]} {unit} (< k={k}): {k - holders[c]} validation fold(s) "
             "will lack it" for c in np.flatnonzero((holders > 0) & (holders < k)).tolist()]
    notes += [f"class {names[c]!r} is in {holders[c]} {unit} but cannot be in every validation fold without "
              "taking another class out of one (its groups hold other classes too)" for c in uncovered]
    return GroupSplit(group_folds[groups], n_groups, notes)

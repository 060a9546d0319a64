"""Which augment ops mirror images, and the lateral class pairs each run uses (:mod:`datatools.core.lateral`).

The runner resolves ``--lateral-pairs`` against the dataset's categories once, checks that the op's quarter turns
(if any) are allowed, and puts the pairs into the op's config; the op's parameter sampler copies them into every
output's parameters, so the provenance of each image says which pairs its mirrors swapped.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from datatools.core.dataset import Dataset
from datatools.core.lateral import (
    MIRROR_TRANSFORMS,
    LateralPairs,
    PairSource,
    check_rotation,
    check_transforms,
    find_pairs,
    quarter_turns,
    resolve_pairs,
)

__all__ = ["LateralUse", "lateral_for_op"]


@dataclass(frozen=True)
class LateralUse:
    """The pairs a run uses and what to tell the user about them.

    Attributes:
        pairs: the resolved pairs (empty for ops that never mirror).
        mirrors: whether the op may mirror images at all.
        warning: a warning to print once (pairs found by name but switched off with ``none``), or None.
    """

    pairs: LateralPairs
    mirrors: bool
    warning: str | None = None


def _mirrors(op: str, config: Any) -> bool:
    if op == "flip":
        return True
    if op == "rotate":
        return any(quarter_turns(a) == 2 for a in config.possible_angles())
    if op == "copy-paste":
        return bool(config.flip_prob > 0)
    if op == "albu":
        from datatools.augment.albu import pipeline_transforms

        return bool(set(pipeline_transforms(config.pipeline)) & MIRROR_TRANSFORMS)
    return False


def lateral_for_op(ds: Dataset, op: str, config: Any, spec: str | LateralPairs) -> tuple[Any, LateralUse]:
    """The op's config with its ``lateral`` pairs resolved from ``spec``, and what the run uses.

    Raises:
        DatatoolsError: a bad ``spec``, or quarter turns (``rotate`` angles near 90/270; ``Transpose``,
            ``RandomRotate90``, ``D4`` in an albu pipeline) on a dataset with pairs found by ``auto``.

    Example:
        >>> config, use = lateral_for_op(ds, "flip", FlipConfig(), "auto")
        >>> use.pairs.describe()
        ['left_lung <-> right_lung (horizontal flips)']
    """
    if not any(f.name == "lateral" for f in dataclasses.fields(config)):
        return config, LateralUse(LateralPairs(source=PairSource.NONE), False)
    where = str(ds.source)
    pairs = resolve_pairs(spec, ds.categories, where)
    if op == "rotate":
        check_rotation(pairs, config.possible_angles(), f"{where}: rotate")
    if op == "albu":
        from datatools.augment.albu import pipeline_transforms

        check_transforms(pairs, pipeline_transforms(config.pipeline), f"{where}: albu pipeline")
    mirrors = _mirrors(op, config)
    warning = None
    if mirrors and pairs.source is PairSource.NONE:
        found = find_pairs(ds.categories)
        if found:
            warning = (f"{op} mirrors images but --lateral-pairs none keeps the classes that look like pairs "
                       f"({'; '.join(found.describe())}) on their old names")
    return dataclasses.replace(config, lateral=pairs), LateralUse(pairs, mirrors, warning)

"""Provenance: which images of a dataset were made from which, read from ``images[].datatools``.

``datatools augment`` records every image it makes as ``images[].datatools = {op, sources, params, seed}``, where
``sources`` lists the **image ids** of the dataset the op read (a flip: one id; a 2x2 mosaic: four). With
``--merge`` the sources are copied into the output with their ids unchanged, so the ids resolve inside the merged
dataset; a chain (a flip of a copy-paste output, merged again) resolves link by link. A source id that is not an
image of the dataset (an unmerged output, pseudo-labelled test images) cannot be followed; the images derived
from it are tied to each other through it.

Splitters group each derived image with its sources through :func:`datatools.folds.groups.image_groups`, which
reads these links; ``folds check`` reports a derived image and an ancestor on opposite sides.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from datatools.core.errors import InvalidDatasetError

__all__ = ["Provenance", "read_provenance"]


@dataclass(frozen=True)
class Provenance:
    """The derivation links between the images of one dataset (positions in its ``images`` list).

    Attributes:
        ops: per image, the op that made it (``"flip"``, ``"mosaic"``, ...), None for an original.
        parents: per image, the positions of its sources that are images of the dataset.
        missing: per image, its source ids that are not images of the dataset.

    Example:
        >>> p = read_provenance([{"id": 1}, {"id": 2, "datatools": {"op": "flip", "sources": [1]}}])
        >>> p.parents, p.links()
        (((), (0,)), [(1, 0)])
    """

    ops: tuple[str | None, ...]
    parents: tuple[tuple[int, ...], ...]
    missing: tuple[tuple[Any, ...], ...]

    @property
    def derived(self) -> int:
        """Number of derived images (those that list sources)."""
        return sum(op is not None for op in self.ops)

    @property
    def unresolved(self) -> int:
        """Number of derived images with at least one source that is not in the dataset."""
        return sum(bool(m) for m in self.missing)

    def links(self) -> list[tuple[int, int]]:
        """Pairs of positions that must share a group: each derived image with each of its sources in the dataset,
        and the images derived from one source that is not in the dataset with each other (first one first)."""
        pairs = [(i, p) for i, parents in enumerate(self.parents) for p in parents]
        first: dict[Any, int] = {}
        for i, missing in enumerate(self.missing):
            for key in missing:
                j = first.setdefault(key, i)
                if j != i:
                    pairs.append((j, i))
        return pairs

    def ancestors(self, i: int) -> dict[int, tuple[str, ...]]:
        """Every image ``i`` was made from, directly or through other images of the dataset, with the ops on the
        shortest chain (``i``'s own op first): ``{position: ("flip", "copy-paste")}`` reads "a flip of a
        copy-paste of it"."""
        out: dict[int, tuple[str, ...]] = {}
        queue: deque[tuple[int, tuple[str, ...]]] = deque([(i, ())])
        while queue:
            node, chain = queue.popleft()
            step = (*chain, self.ops[node] or "?")
            for p in self.parents[node]:
                if p != i and p not in out:
                    out[p] = step
                    queue.append((p, step))
        return out

    def missing_roots(self, i: int) -> set[Any]:
        """The source ids outside the dataset that ``i`` derives from, directly or through its ancestors."""
        roots = set(self.missing[i])
        for a in self.ancestors(i):
            roots.update(self.missing[a])
        return roots


def _label(img: Mapping[str, Any]) -> str:
    return f"image id {img.get('id')} ({img.get('file_name')})"


def read_provenance(images: Sequence[Mapping[str, Any]], source: str = "dataset") -> Provenance:
    """Read the provenance of ``images`` (COCO image records): sources are resolved by image id among them.

    An image without ``datatools.sources`` is an original. An image listing itself is not linked to itself.

    Args:
        images: the dataset's image records.
        source: the annotation file, for messages.

    Returns:
        The links, by position in ``images``.

    Raises:
        InvalidDatasetError: ``datatools`` is not an object, or ``datatools.sources`` is not a list of image ids.

    Example:
        >>> ds = Dataset.open(data="aug/")  # written by `datatools augment flip --merge`
        >>> p = read_provenance(ds.images, str(ds.source))
        >>> p.derived, p.unresolved
        (45, 0)
    """
    position: dict[Any, int] = {}
    for n, img in enumerate(images):
        position.setdefault(img.get("id"), n)
    ops: list[str | None] = []
    parents: list[tuple[int, ...]] = []
    missing: list[tuple[Any, ...]] = []
    for n, img in enumerate(images):
        record = img.get("datatools")
        if record is None or (isinstance(record, Mapping) and record.get("sources") is None):
            ops.append(None)
            parents.append(())
            missing.append(())
            continue
        if not isinstance(record, Mapping):
            raise InvalidDatasetError(f"{source}: {_label(img)} has datatools {record!r}: expected an object "
                                      "({op, sources, ...})")
        sources = record["sources"]
        if not isinstance(sources, list) or not all(isinstance(s, int | str) and not isinstance(s, bool)
                                                    for s in sources):
            raise InvalidDatasetError(f"{source}: {_label(img)} has datatools.sources {sources!r}: expected a list "
                                      "of image ids")
        op = record.get("op")
        ops.append(str(op) if op is not None else "derived")
        found = [position[s] for s in sources if s in position]
        parents.append(tuple(sorted({p for p in found if p != n})))
        missing.append(tuple(dict.fromkeys(s for s in sources if s not in position)))
    return Provenance(tuple(ops), tuple(parents), tuple(missing))

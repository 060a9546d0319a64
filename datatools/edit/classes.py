"""``edit classes``: drop, merge, rename, reorder and renumber categories.

The steps run in a fixed order, each on the result of the one before: drop, merge, rename, reorder, drop-empty,
reindex. Only the ``categories`` list and the ``category_id`` of annotations change (plus the ignore regions of
``--as-ignore``); every other field, every segmentation and every image record is kept as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from datatools.core.classes import placeholder_category_ids
from datatools.core.errors import InvalidDatasetError
from datatools.core.masks import annotation_to_rle
from datatools.edit.refs import ClassRef, parse_list, parse_pair, resolve

__all__ = ["ClassEdit", "ClassesResult", "edit_classes"]


@dataclass(frozen=True)
class ClassEdit:
    """What ``edit classes`` does; every string is checked when the config is built.

    Attributes:
        drop: classes to remove (``NAME`` or ``id:N``); their annotations go too, or become ignore regions.
        merge: ``NEW=OLD,OLD``: the classes on the right become one class named NEW, with the id of the first.
        rename: ``OLD=NEW``.
        reorder: ``A,B,C``: these classes first, in this order; the others follow in their order.
        drop_empty: remove the Roboflow placeholder category (see :func:`placeholder_category_ids`).
        reindex: renumber category ids 1..K in the final order (0 stays free for background).
        as_ignore: dropped annotations become RLE ignore regions in ``images[].datatools.ignore``.

    Example:
        >>> ClassEdit(merge=("general trash=trash,other",), drop_empty=True).merges[0][0]
        'general trash'
    """

    drop: tuple[str, ...] = ()
    merge: tuple[str, ...] = ()
    rename: tuple[str, ...] = ()
    reorder: str | None = None
    drop_empty: bool = False
    reindex: bool = False
    as_ignore: bool = False
    drops: tuple[ClassRef, ...] = field(init=False, repr=False)
    merges: tuple[tuple[str, tuple[ClassRef, ...]], ...] = field(init=False, repr=False)
    renames: tuple[tuple[ClassRef, str], ...] = field(init=False, repr=False)
    order: tuple[ClassRef, ...] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "drops", tuple(ClassRef.parse(d) for d in self.drop))
        merges = []
        for text in self.merge:
            new, olds = parse_pair(text, right_is_list=True)
            merges.append((str(new), tuple(olds)))  # type: ignore[arg-type]
        object.__setattr__(self, "merges", tuple(merges))
        object.__setattr__(self, "renames", tuple(parse_pair(t, right_is_list=False) for t in self.rename))
        object.__setattr__(self, "order", tuple(parse_list(self.reorder)) if self.reorder else ())
        if self.as_ignore and not self.drop:
            raise ValueError("as_ignore goes with drop")
        if not (self.drop or self.merge or self.rename or self.reorder or self.drop_empty or self.reindex):
            raise ValueError("nothing to do: give --drop, --merge, --rename, --reorder, --drop-empty or --reindex")

    def params(self) -> dict[str, Any]:
        """The options as given, for the summary."""
        return {"drop": list(self.drop), "merge": list(self.merge), "rename": list(self.rename),
                "reorder": self.reorder, "drop_empty": self.drop_empty, "reindex": self.reindex,
                "as_ignore": self.as_ignore}


@dataclass
class ClassesResult:
    """The edited COCO dict and what changed.

    Attributes:
        coco: the new dict (the input is not modified).
        relabelled: ids of the annotations whose class was merged into another (their pixels are unchanged).
        summary: counts per step, and the old -> new category id of every class kept.
    """

    coco: dict[str, Any]
    relabelled: set[Any]
    summary: dict[str, Any]


def _ids(refs: Sequence[ClassRef], cats: list[dict[str, Any]], source: Any, option: str) -> list[Any]:
    out: list[Any] = []
    for ref in refs:
        out += [i for i in resolve(ref, cats, source, option) if i not in out]
    return out


def _json_rle(segmentation: Any, height: int, width: int) -> dict[str, Any]:
    rle = dict(annotation_to_rle(segmentation, height, width))
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _drop(coco: dict[str, Any], ids: set[Any], as_ignore: bool) -> tuple[int, int]:
    """Remove the categories ``ids`` and their annotations (or turn those into ignore regions)."""
    images = {img["id"]: img for img in coco["images"]}
    kept, dropped, ignored = [], 0, 0
    for ann in coco["annotations"]:
        if ann["category_id"] not in ids:
            kept.append(ann)
            continue
        dropped += 1
        img = images.get(ann["image_id"])
        if as_ignore and img is not None:
            meta = dict(img.get("datatools") or {})
            meta["ignore"] = [*meta.get("ignore", []),
                              _json_rle(ann["segmentation"], int(img["height"]), int(img["width"]))]
            img["datatools"] = meta
            ignored += 1
    coco["annotations"] = kept
    coco["categories"] = [c for c in coco["categories"] if c["id"] not in ids]
    return dropped, ignored


def _merge(coco: dict[str, Any], edit: ClassEdit, source: Any) -> tuple[set[Any], dict[Any, Any]]:
    """Apply every ``--merge``; returns the relabelled annotation ids and merged category id -> target id."""
    resolved = [(new, _ids(olds, coco["categories"], source, "--merge")) for new, olds in edit.merges]
    seen: set[Any] = set()
    for new, ids in resolved:  # all named against the same categories: a class may be in one merge only
        if seen & set(ids):
            raise InvalidDatasetError(f"{source}: --merge: a class is in two merges ({new!r})")
        seen |= set(ids)
    relabelled: set[Any] = set()
    redirect: dict[Any, Any] = {}
    for new, ids in resolved:
        clash = [c for c in coco["categories"] if c["name"] == new and c["id"] not in ids]
        if clash:
            raise InvalidDatasetError(f"{source}: --merge {new!r}: another class (id {clash[0]['id']}) has that name; "
                                      "list it on the right to merge it too, or rename it first")
        target, others = ids[0], set(ids[1:])
        redirect.update({i: target for i in others})
        for cat in coco["categories"]:
            if cat["id"] == target:
                cat["name"] = new
        coco["categories"] = [c for c in coco["categories"] if c["id"] not in others]
        for ann in coco["annotations"]:
            if ann["category_id"] in others:
                ann["category_id"] = target
                relabelled.add(ann["id"])
    return relabelled, redirect


def edit_classes(coco: dict[str, Any], edit: ClassEdit, source: Any = "dataset") -> ClassesResult:
    """Apply ``edit`` to a COCO dict.

    Args:
        coco: the input (not modified).
        edit: what to do.
        source: the annotation file, for messages.

    Returns:
        The new dict, the relabelled annotation ids and a summary.

    Raises:
        InvalidDatasetError: a class named that the dataset lacks, a class in two merges, a merge or rename onto
            the name of another class, or every class dropped.

    Example:
        >>> out = edit_classes(coco, ClassEdit(merge=("sharps=syringe,ampoule",), drop_empty=True))
        >>> [c["name"] for c in out.coco["categories"]]
        ['Blood bag', 'Mask', 'sharps']
    """
    coco = {**coco, "images": copy.deepcopy(coco["images"]), "annotations": copy.deepcopy(coco["annotations"]),
            "categories": copy.deepcopy(coco["categories"])}
    original = [c["id"] for c in coco["categories"]]
    summary: dict[str, Any] = {"params": edit.params(), "categories_before": len(original)}
    drop_ids = set(_ids(edit.drops, coco["categories"], source, "--drop"))
    summary["dropped_classes"] = [c["name"] for c in coco["categories"] if c["id"] in drop_ids]
    summary["annotations_dropped"], summary["annotations_ignored"] = _drop(coco, drop_ids, edit.as_ignore)
    relabelled, redirect = _merge(coco, edit, source)
    for old, name in edit.renames:
        ids = resolve(old, coco["categories"], source, "--rename")  # type: ignore[arg-type]
        clash = [c for c in coco["categories"] if c["name"] == name and c["id"] not in ids]
        if clash:
            raise InvalidDatasetError(f"{source}: --rename {old}={name!r}: another class (id {clash[0]['id']}) has "
                                      "that name; use --merge to join them")
        for cat in coco["categories"]:
            if cat["id"] in ids:
                cat["name"] = name
    if edit.order:
        first = _ids(edit.order, coco["categories"], source, "--reorder")
        by_id = {c["id"]: c for c in coco["categories"]}
        coco["categories"] = [by_id[i] for i in first] + [c for c in coco["categories"] if c["id"] not in first]
    summary["placeholder_removed"] = []
    if edit.drop_empty:
        empty = set(placeholder_category_ids(coco["categories"], coco["annotations"]))
        summary["placeholder_removed"] = [c["name"] for c in coco["categories"] if c["id"] in empty]
        coco["categories"] = [c for c in coco["categories"] if c["id"] not in empty]
    if not coco["categories"]:
        raise InvalidDatasetError(f"{source}: the edit leaves no category")
    new_id = {c["id"]: c["id"] for c in coco["categories"]}
    if edit.reindex:
        new_id = {c["id"]: n for n, c in enumerate(coco["categories"], start=1)}
        for cat in coco["categories"]:
            cat["id"] = new_id[cat["id"]]
        for ann in coco["annotations"]:
            ann["category_id"] = new_id[ann["category_id"]]
    summary["categories_after"] = len(coco["categories"])
    summary["relabelled"] = len(relabelled)
    summary["id_map"] = [[old, new_id[redirect.get(old, old)]] for old in original
                         if redirect.get(old, old) in new_id]
    return ClassesResult(coco, relabelled, summary)

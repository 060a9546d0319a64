"""Classes that trade places when an image is mirrored: the one class-pair rule of every flip.

A horizontal flip turns a ``left_lung`` into what a right lung looks like, on the side where right lungs are; a
vertical flip does the same to ``upper``/``lower`` and ``top``/``bottom`` classes. Every place that mirrors an
image (``augment flip``/``rotate``/``copy-paste``/``albu``, the trainer's online augmentation, test-time
augmentation) asks this module which classes swap, so they all agree.

Pairs are found from class names (``auto``): the names are split into words (at spaces, ``_ - . ( )`` and
camelCase), and two classes pair when they are the same words but for one side word: ``left``/``l`` against
``right``/``r`` (horizontal), ``top`` against ``bottom`` and ``upper`` against ``lower`` (vertical). So
``left_lung``/``right_lung``, ``lung_left``/``lung_right``, ``l_kidney``/``r_kidney``, ``Kidney-L``/``Kidney-R``,
``Left Lung``/``Right Lung`` and ``LeftLung``/``RightLung`` all pair, and ``finger-1`` or ``Paper pack`` do not.

Example:
    >>> pairs = resolve_pairs("auto", [{"id": 1, "name": "left_lung"}, {"id": 2, "name": "right_lung"}])
    >>> pairs.horizontal, pairs.mirror_map(horizontal=True, vertical=False)
    (((1, 2),), {1: 2, 2: 1})
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.errors import DatatoolsError

__all__ = [
    "MIRROR_TRANSFORMS",
    "QUARTER_TRANSFORMS",
    "LateralPairs",
    "PairSource",
    "applied_mirrors",
    "channel_permutation",
    "check_rotation",
    "check_spec",
    "check_transforms",
    "find_pairs",
    "quarter_turns",
    "relabel",
    "resolve_pairs",
    "rotation_map",
    "value_lut",
]

#: side word -> (axis, family, side): a pair is two names that differ in one side word of the same family
_SIDE_WORDS: dict[str, tuple[str, str, int]] = {
    "left": ("h", "lr", 0), "l": ("h", "lr", 0), "right": ("h", "lr", 1), "r": ("h", "lr", 1),
    "top": ("v", "tb", 0), "bottom": ("v", "tb", 1), "upper": ("v", "ul", 0), "lower": ("v", "ul", 1),
}
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SPLIT = re.compile(r"[\s_\-.()\[\]/,]+")


class PairSource(str, Enum):
    """Where the pairs come from: found from class names, switched off, or named by the user."""

    AUTO = "auto"
    NONE = "none"
    NAMED = "named"


Pair = tuple[int, int]


@dataclass(frozen=True)
class LateralPairs:
    """Category-id pairs that swap under mirrors.

    Attributes:
        horizontal: ``(left, right)`` category ids, swapped by horizontal flips.
        vertical: ``(top, bottom)`` category ids, swapped by vertical flips.
        source: ``auto`` (from class names), ``none`` or ``named`` (the user's ``A=B,C=D``).
        names: category id -> class name, for messages.
    """

    horizontal: tuple[Pair, ...] = ()
    vertical: tuple[Pair, ...] = ()
    source: PairSource = PairSource.AUTO
    names: Mapping[int, str] = field(default_factory=dict, compare=False, repr=False, metadata={"json": False})

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", PairSource(self.source))
        for axis in (self.horizontal, self.vertical):
            ids = [c for pair in axis for c in pair]
            if len(set(ids)) != len(ids):
                raise DatatoolsError(f"lateral pairs must not share a class: {list(axis)}")

    def __bool__(self) -> bool:
        return bool(self.horizontal or self.vertical)

    @property
    def named(self) -> bool:
        """The user named the rule (``none`` or ``A=B``): quarter turns are then allowed and keep labels."""
        return self.source is not PairSource.AUTO

    def mirror_map(self, horizontal: bool, vertical: bool) -> dict[int, int]:
        """Category id -> category id after a mirror (only the ids that change).

        Example:
            >>> LateralPairs(((1, 2),), ((3, 4),)).mirror_map(horizontal=True, vertical=True)
            {1: 2, 2: 1, 3: 4, 4: 3}
        """
        out: dict[int, int] = {}
        for on, pairs in ((horizontal, self.horizontal), (vertical, self.vertical)):
            if not on:
                continue
            swap = {a: b for a, b in pairs} | {b: a for a, b in pairs}
            ids = set(out) | set(swap)
            out = {c: swap.get(out.get(c, c), out.get(c, c)) for c in ids}
        return {a: b for a, b in sorted(out.items()) if a != b}

    def describe(self) -> list[str]:
        """One line per pair: ``left_lung <-> right_lung (horizontal flips)``."""
        def name(c: int) -> str:
            return self.names.get(c, f"id {c}")
        return ([f"{name(a)} <-> {name(b)} (horizontal flips)" for a, b in self.horizontal]
                + [f"{name(a)} <-> {name(b)} (vertical flips)" for a, b in self.vertical])

    def to_json(self) -> dict[str, Any]:
        """``{"source", "horizontal": [[a, b], ...], "vertical": [...]}`` (category ids)."""
        return {"source": self.source.value, "horizontal": [list(p) for p in self.horizontal],
                "vertical": [list(p) for p in self.vertical]}

    @classmethod
    def from_json(cls, value: Mapping[str, Any] | None, names: Mapping[int, str] | None = None) -> LateralPairs:
        """The inverse of :meth:`to_json` (None: no pairs, as in files written before pairs were recorded)."""
        if not value:
            return cls(source=PairSource.NONE, names=dict(names or {}))
        return cls(tuple((int(a), int(b)) for a, b in value.get("horizontal", [])),
                   tuple((int(a), int(b)) for a, b in value.get("vertical", [])),
                   PairSource(value.get("source", "named")), dict(names or {}))


def _words(name: str) -> list[str]:
    return [w for w in _SPLIT.split(_CAMEL.sub(" ", name).lower()) if w]


def find_pairs(categories: Sequence[Mapping[str, Any]]) -> LateralPairs:
    """Pairs found from class names (``auto``); a side slot claimed by two classes pairs nothing.

    Example:
        >>> find_pairs([{"id": 3, "name": "Kidney-L"}, {"id": 5, "name": "Kidney-R"}]).horizontal
        ((3, 5),)
    """
    slots: dict[tuple[str, str, tuple[str, ...], int], list[list[int]]] = {}
    for cat in categories:
        words = _words(str(cat["name"]))
        for i, word in enumerate(words):
            if word in _SIDE_WORDS and len(words) > 1:
                axis, family, side = _SIDE_WORDS[word]
                key = (axis, family, (*words[:i], "*", *words[i + 1:]), i)
                slots.setdefault(key, [[], []])[side].append(int(cat["id"]))
    found: dict[str, list[Pair]] = {"h": [], "v": []}
    for (axis, *_), (first, second) in slots.items():
        if len(first) == 1 and len(second) == 1 and first[0] != second[0]:
            found[axis].append((first[0], second[0]))
    names = {int(c["id"]): str(c["name"]) for c in categories}
    h, v = _disjoint(found["h"]), _disjoint(found["v"])
    return LateralPairs(tuple(h), tuple(v), PairSource.AUTO, names)


def _disjoint(pairs: list[Pair]) -> list[Pair]:
    """Pairs in id order, leaving out any that shares a class with another (ambiguous)."""
    count: dict[int, int] = {}
    for pair in pairs:
        for c in pair:
            count[c] = count.get(c, 0) + 1
    return sorted({p for p in pairs if count[p[0]] == count[p[1]] == 1})


def check_spec(spec: str) -> str:
    """Check the syntax of ``--lateral-pairs`` (``auto``, ``none`` or ``A=B,C=D``) before any work.

    Raises:
        DatatoolsError: an empty name or a pair without ``=``.
    """
    text = spec.strip()
    if text.lower() in ("auto", "none"):
        return text.lower()
    for item in text.split(","):
        parts = item.split("=")
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise DatatoolsError(f"--lateral-pairs takes auto, none or LEFT=RIGHT,TOP=BOTTOM (class names), "
                                 f"got {spec!r}")
    return text


def resolve_pairs(spec: str | LateralPairs, categories: Sequence[Mapping[str, Any]],
                  where: str = "dataset") -> LateralPairs:
    """The pairs of ``spec`` for a dataset's categories.

    Args:
        spec: ``auto`` (found from the names), ``none``, ``A=B,C=D`` (class names; a pair is vertical when both
            names carry top/bottom or upper/lower words, else horizontal), or pairs already resolved.
        categories: COCO categories (``id``, ``name``).
        where: the file named in errors.

    Raises:
        DatatoolsError: bad syntax, a name that is not a class (or names two), a class in two pairs.

    Example:
        >>> resolve_pairs("shoe a=shoe b", [{"id": 1, "name": "shoe a"}, {"id": 2, "name": "shoe b"}]).horizontal
        ((1, 2),)
    """
    if isinstance(spec, LateralPairs):
        return spec
    text = check_spec(spec)
    names = {int(c["id"]): str(c["name"]) for c in categories}
    if text == "auto":
        return find_pairs(categories)
    if text == "none":
        return LateralPairs(source=PairSource.NONE, names=names)
    h: list[Pair] = []
    v: list[Pair] = []
    for item in text.split(","):
        a, b = (_category(n.strip(), categories, where) for n in item.split("="))
        if a == b:
            raise DatatoolsError(f"--lateral-pairs {item!r}: a class cannot pair with itself")
        vertical = all(any(_SIDE_WORDS.get(w, ("",))[0] == "v" for w in _words(names[c])) for c in (a, b))
        (v if vertical else h).append((a, b))
    try:
        return LateralPairs(tuple(h), tuple(v), PairSource.NAMED, names)
    except DatatoolsError as exc:
        raise DatatoolsError(f"{where}: {exc}") from None


def _category(name: str, categories: Sequence[Mapping[str, Any]], where: str) -> int:
    ids = [int(c["id"]) for c in categories if str(c["name"]) == name]
    if len(ids) != 1:
        known = ", ".join(sorted({str(c["name"]) for c in categories}))
        what = "is not a class" if not ids else "names several categories"
        raise DatatoolsError(f"{where}: --lateral-pairs: {name!r} {what} (classes: {known})")
    return ids[0]


def quarter_turns(angle: float) -> int:
    """The nearest number of quarter turns of ``angle`` degrees, 0..3."""
    return int(round(angle / 90.0)) % 4


def rotation_map(pairs: LateralPairs, angle: float) -> dict[int, int]:
    """Category id -> id after a rotation: a half turn is a horizontal and a vertical flip (both kinds of pairs
    swap); a quarter turn keeps labels (allowed only when the rule is named; see :func:`check_rotation`); smaller
    angles keep labels."""
    return pairs.mirror_map(True, True) if quarter_turns(angle) == 2 else {}


def check_rotation(pairs: LateralPairs, angles: Sequence[float], where: str = "rotate") -> None:
    """Refuse quarter turns on a dataset whose classes pair up unless the user named the rule.

    A quarter turn puts what was on the left at the bottom: neither the left/right nor the top/bottom names fit
    afterwards, so there is no rule to guess.

    Raises:
        DatatoolsError: an angle within 45 degrees of 90 or 270, pairs found by ``auto``.
    """
    if pairs and not pairs.named and any(quarter_turns(a) % 2 for a in angles):
        raise DatatoolsError(f"{where}: quarter turns move left/right classes to the top and bottom of the image "
                             f"({'; '.join(pairs.describe())}); name the rule: --lateral-pairs none keeps every "
                             "label, --lateral-pairs A=B swaps those pairs on half turns and keeps them on quarter "
                             "turns")


def relabel(category_ids: Sequence[int], mapping: Mapping[int, int]) -> list[int]:
    """Category ids after ``mapping`` (ids not in it stay)."""
    return [mapping.get(c, c) for c in category_ids]


def value_lut(mapping: Mapping[int, int], value_of: Mapping[int, int]) -> npt.NDArray[np.uint8]:
    """A (256,) uint8 lookup table that swaps the mask values of paired classes (255 ignore and unknown values
    stay).

    Args:
        mapping: category id -> category id (from :meth:`LateralPairs.mirror_map`).
        value_of: category id -> mask value.

    Example:
        >>> value_lut({7: 9, 9: 7}, {7: 1, 9: 2})[[0, 1, 2, 255]].tolist()
        [0, 2, 1, 255]
    """
    lut = np.arange(256, dtype=np.uint8)
    for a, b in mapping.items():
        if a in value_of and b in value_of:
            lut[value_of[a]] = value_of[b]
    return lut


def channel_permutation(mapping: Mapping[int, int], channel_ids: Sequence[int | None]) -> list[int]:
    """Channel order that swaps paired classes in a (C, ...) stack of scores: ``out = stack[perm]``.

    Args:
        mapping: category id -> category id.
        channel_ids: the category id of each channel (None for background).

    Example:
        >>> channel_permutation({7: 9, 9: 7}, [None, 7, 9, 4])
        [0, 2, 1, 3]
    """
    index = {c: k for k, c in enumerate(channel_ids) if c is not None}
    return [index.get(mapping.get(c, c), k) if c is not None else k for k, c in enumerate(channel_ids)]


#: albumentations transforms that mirror or turn an image by quarter turns (their applied parameters say which)
MIRROR_TRANSFORMS = frozenset({"HorizontalFlip", "VerticalFlip", "Transpose", "RandomRotate90", "D4",
                               "SquareSymmetry"})
#: of those, the ones that may turn an image by a quarter turn (or transpose it)
QUARTER_TRANSFORMS = frozenset({"Transpose", "RandomRotate90", "D4", "SquareSymmetry"})


def applied_mirrors(applied: Sequence[tuple[str, Mapping[str, Any]]]) -> tuple[bool, bool]:
    """Whether the transforms albumentations reports it applied (``Compose(save_applied_params=True)``, the
    ``applied_transforms`` list) mirrored the image left-right and up-down, as ``(horizontal, vertical)``.

    Two horizontal flips cancel; a half turn (``RandomRotate90`` factor 2, the ``r180`` element of ``D4``) counts as
    both; quarter turns and transposes count as neither (see :func:`check_transforms`).

    Example:
        >>> applied_mirrors([("HorizontalFlip", {}), ("Affine", {}), ("D4", {"group_element": "v"})])
        (True, True)
    """
    h = v = False
    for name, params in applied:
        name = name.rsplit(".", 1)[-1]
        element = str(params.get("group_element", "")) if name in ("D4", "SquareSymmetry") else ""
        half = (name == "RandomRotate90" and int(params.get("factor", 0)) % 4 == 2) or element == "r180"
        if name == "HorizontalFlip" or element == "h" or half:
            h = not h
        if name == "VerticalFlip" or element == "v" or half:
            v = not v
    return h, v


def check_transforms(pairs: LateralPairs, names: Sequence[str], where: str) -> None:
    """Refuse a pipeline that may turn images by quarter turns on a dataset whose classes pair up, unless the rule
    is named (then quarter turns keep labels, as in :func:`check_rotation`).

    Raises:
        DatatoolsError: names the transforms and the pairs.
    """
    quarter = sorted({n.rsplit(".", 1)[-1] for n in names} & QUARTER_TRANSFORMS)
    if pairs and not pairs.named and quarter:
        raise DatatoolsError(f"{where}: {', '.join(quarter)} may turn images by quarter turns, which move left/right "
                             f"classes to the top and bottom ({'; '.join(pairs.describe())}); remove it or name the "
                             "rule: --lateral-pairs none keeps every label, --lateral-pairs A=B swaps those pairs on "
                             "flips and half turns and keeps them on quarter turns")

"""The written mapping from COCO categories to mask values, and the one helper that names classes for people.

Values are contiguous ``1..K`` in the order the categories are listed, ``0`` is background and ``255`` is
ignore. The mapping goes by category id, so a category with id 0 never collides with background and two
categories with the same name stay distinct.

Every plot, table, CSV and message that labels classes takes the label from :func:`display_names` (a name shared
by two categories gets its id: ``facade (id 0)``, ``facade (id 3)``); plots pass it through :func:`plot_label`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.atomic import atomic_write_text
from datatools.core.errors import InvalidDatasetError, UnreadableFileError

__all__ = ["BACKGROUND", "IGNORE_INDEX", "ClassInfo", "ClassMap", "display_names", "placeholder_category_ids",
           "plot_label", "voc_palette"]

BACKGROUND = 0
IGNORE_INDEX = 255
MAX_CLASSES = 254


def voc_palette(n: int = 256) -> npt.NDArray[np.uint8]:
    """The PASCAL VOC colour map: (n, 3) uint8, 0 black, 255 the VOC ignore colour."""
    return _voc_palette(n).copy()


@lru_cache(maxsize=4)
def _voc_palette(n: int) -> npt.NDArray[np.uint8]:
    palette = np.zeros((n, 3), dtype=np.uint8)
    for i in range(n):
        c, rgb = i, [0, 0, 0]
        for j in range(8):
            for k in range(3):
                rgb[k] |= ((c >> k) & 1) << (7 - j)
            c >>= 3
        palette[i] = rgb
    return palette


#: plot labels longer than this are cut (the tables and CSVs keep the whole name)
PLOT_LABEL_CHARS = 32


def display_names(classes: Iterable[tuple[Any, str]]) -> list[str]:
    """The name people see for each class: its name, with its id when another class has the same name.

    Args:
        classes: ``(category id, name)`` pairs in class order; an id of ``None`` (background) never gets a
            suffix.

    Returns:
        One label per class, all distinct when the ids are.

    Example:
        >>> display_names([(0, "facade"), (3, "facade"), (5, "door")])
        ['facade (id 0)', 'facade (id 3)', 'door']
        >>> display_names((c["id"], c["name"]) for c in ds.categories)  # COCO categories
    """
    pairs = [(i, str(n)) for i, n in classes]
    counts: dict[str, int] = {}
    for _, name in pairs:
        counts[name] = counts.get(name, 0) + 1
    return [f"{name} (id {i})" if counts[name] > 1 and i is not None else name for i, name in pairs]


def placeholder_category_ids(categories: Sequence[dict[str, Any]], annotations: Iterable[dict[str, Any]]
                             ) -> list[Any]:
    """The ids of placeholder categories: the one Roboflow exports put first (``{"id": 0, "name": "medical-waste",
    "supercategory": "none"}``), which no annotation uses and whose name is the supercategory of every other
    category. Its id need not be 0 (a reindexed export moves it); a dataset of one category has none.

    Example:
        >>> cats = [{"id": 0, "name": "waste", "supercategory": "none"},
        ...         {"id": 1, "name": "mask", "supercategory": "waste"}]
        >>> placeholder_category_ids(cats, [{"category_id": 1}])
        [0]
    """
    used = {a.get("category_id") for a in annotations}
    out = []
    for cat in categories:
        others = [c for c in categories if c is not cat]
        if cat.get("id") not in used and others and all(c.get("supercategory") == cat.get("name") for c in others):
            out.append(cat.get("id"))
    return out


def plot_label(label: str, max_chars: int = PLOT_LABEL_CHARS) -> str:
    """A class label as matplotlib should get it: ``$`` shown as a dollar, not as mathtext (an odd count of
    them fails to render), a leading ``_`` kept (matplotlib hides legend entries whose label starts with one),
    and a long name cut to ``max_chars`` with an ellipsis so it cannot push the plot off the figure.

    Example:
        >>> plot_label("_cost $5")
        '\u200b_cost \\$5'
    """
    if len(label) > max_chars:
        label = label[: max_chars - 1].rstrip() + "\u2026"
    label = label.replace("$", r"\$")
    return "\u200b" + label if label.startswith("_") else label


@dataclass(frozen=True)
class ClassInfo:
    """One class of a semantic mask: its pixel value, COCO category id, name and display colour (RGB)."""

    value: int
    category_id: int | None
    name: str
    color: tuple[int, int, int]


@dataclass(frozen=True)
class ClassMap:
    """Category id -> mask value, for the classes of one dataset (background excluded).

    Example:
        >>> cm = ClassMap.from_categories([{"id": 0, "name": "a"}, {"id": 7, "name": "a"}])
        >>> cm.value_of(0), cm.value_of(7)
        (1, 2)
    """

    classes: tuple[ClassInfo, ...]

    def __post_init__(self) -> None:
        if len(self.classes) > MAX_CLASSES:
            raise InvalidDatasetError(
                f"{len(self.classes)} categories do not fit a uint8 semantic mask (at most {MAX_CLASSES}); "
                "use multilabel masks"
            )
        values = [c.value for c in self.classes]
        if values != list(range(1, len(values) + 1)):
            raise InvalidDatasetError(f"class values must be 1..{len(values)} in order, got {values}")
        ids = [c.category_id for c in self.classes]
        if len(set(ids)) != len(ids):
            raise InvalidDatasetError(f"category ids repeat in the class map: {ids}")

    @classmethod
    def from_categories(cls, categories: Sequence[dict[str, Any]]) -> ClassMap:
        """Values ``1..K`` in the order the categories are listed."""
        palette = voc_palette()
        return cls(tuple(
            ClassInfo(i, int(cat["id"]), str(cat["name"]), tuple(int(v) for v in palette[i]))  # type: ignore[arg-type]
            for i, cat in enumerate(categories, start=1)
        ))

    def __len__(self) -> int:
        return len(self.classes)

    def value_of(self, category_id: int) -> int:
        """The mask value of a category id."""
        try:
            return self._values[category_id]
        except KeyError:
            raise InvalidDatasetError(f"category id {category_id!r} is not in the class map") from None

    @cached_property
    def _values(self) -> dict[int | None, int]:
        return {c.category_id: c.value for c in self.classes}

    def values_by_name(self, names: Sequence[str]) -> list[list[int]]:
        """The values of each name (a name shared by two categories gives both); unknown names raise."""
        known = [c.name for c in self.classes]
        out = []
        for name in names:
            values = [c.value for c in self.classes if c.name == name]
            if not values:
                raise InvalidDatasetError(f"class {name!r} is not a category of the dataset; known: {known}")
            out.append(values)
        return out

    def display_names(self) -> list[str]:
        """One label per class value 1..K (see :func:`display_names`)."""
        return display_names((c.category_id, c.name) for c in self.classes)

    def palette(self) -> npt.NDArray[np.uint8]:
        """(256, 3) uint8 colours indexed by mask value."""
        palette = voc_palette()
        for c in self.classes:
            palette[c.value] = c.color
        return palette

    def to_json(self) -> list[dict[str, Any]]:
        """The ``classes.json`` content: background first, then one entry per class."""
        entries = [{"value": BACKGROUND, "category_id": None, "name": "background", "color": [0, 0, 0]}]
        entries += [{"value": c.value, "category_id": c.category_id, "name": c.name, "color": list(c.color)}
                    for c in self.classes]
        return entries

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write ``classes.json`` atomically, one class per line.

        Each entry is ``{"value", "category_id", "name", "color"}``: ``value`` is what the pixels of the mask PNGs
        next to it hold, ``color`` the RGB colour a viewer shows for it. Mask PNGs are palette images by default
        (the mmsegmentation convention): PIL and mmseg read the values, but ``cv2.imread`` returns the colours
        (even with ``cv2.IMREAD_UNCHANGED``); commands that write masks take ``--mask-format gray`` for PNGs that
        OpenCV reads as values.
        """
        lines = ",\n ".join(json.dumps(e, ensure_ascii=False) for e in self.to_json())
        atomic_write_text(path, f"[{lines}]\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ClassMap:
        """Read a ``classes.json`` written by :meth:`save`."""
        path = Path(path)
        try:
            entries = json.loads(path.read_text(encoding="utf-8"))
            classes = tuple(
                ClassInfo(int(e["value"]), int(e["category_id"]), str(e["name"]), tuple(e["color"]))
                for e in entries if int(e["value"]) != BACKGROUND
            )
        except FileNotFoundError:
            raise UnreadableFileError(f"{path}: classes file not found") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise UnreadableFileError(f"{path}: not a datatools classes.json ({exc})") from None
        return cls(classes)

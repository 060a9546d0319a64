"""How ``datatools edit`` names classes on the command line, and the escaping rule that lets any name through.

A class is named by its category name, or by its id as ``id:N`` (the only way to pick one of two categories that
share a name: a name names every category that has it). In ``--merge NEW=OLD,OLD``, ``--rename OLD=NEW`` and
``--reorder A,B,C`` the characters ``,`` and ``=`` separate; a backslash makes the next character literal, so a
name holding them is written ``a\\,b`` or ``x\\=y``, a backslash is ``\\\\``, and a class literally called
``id:3`` is ``\\id:3``. Leading and trailing spaces of a name are kept (names are matched exactly).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from datatools.core.errors import InvalidDatasetError

__all__ = ["ClassRef", "parse_list", "parse_pair", "resolve", "split_escaped"]


def split_escaped(text: str, sep: str, maxsplit: int = -1) -> list[str]:
    """Split ``text`` at every ``sep`` not preceded by a backslash; the parts keep their escapes.

    Example:
        >>> split_escaped(r"a\\,b,c", ",")
        ['a\\\\,b', 'c']
    """
    parts, current, k, escaped = [], "", 0, False
    for ch in text:
        if escaped:
            current += "\\" + ch
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep and (maxsplit < 0 or k < maxsplit):
            parts.append(current)
            current, k = "", k + 1
        else:
            current += ch
    if escaped:
        raise ValueError(f"{text!r} ends with a lone backslash (write \\\\ for a backslash)")
    return [*parts, current]


def _unescape(text: str) -> str:
    out, escaped = "", False
    for ch in text:
        if escaped or ch != "\\":
            out += ch
            escaped = False
        else:
            escaped = True
    return out


@dataclass(frozen=True)
class ClassRef:
    """A class as the user named it: a category id (``id:N``) or a name.

    Example:
        >>> ClassRef.parse("id:3"), ClassRef.parse(r"\\id:3").name
        (ClassRef(name=None, id=3), 'id:3')
    """

    name: str | None = None
    id: int | None = None

    @classmethod
    def parse(cls, token: str) -> ClassRef:
        """Read one escaped token (see the module docstring)."""
        if token.startswith("id:"):
            try:
                return cls(id=int(token[3:]))
            except ValueError:
                raise ValueError(f"{token!r}: expected id:N with an integer N (a name starting with 'id:' is "
                                 f"written \\{token})") from None
        name = _unescape(token)
        if not name:
            raise ValueError("an empty class name")
        return cls(name=name)

    def __str__(self) -> str:
        return f"id:{self.id}" if self.id is not None else repr(self.name)


def parse_list(text: str) -> list[ClassRef]:
    """``A,B,id:3`` -> class references (``\\,`` is a comma inside a name)."""
    return [ClassRef.parse(t) for t in split_escaped(text, ",")]


def parse_pair(text: str, right_is_list: bool) -> tuple[ClassRef | str, list[ClassRef] | ClassRef | str]:
    """Split ``LEFT=RIGHT`` at the first unescaped ``=``.

    ``--rename OLD=NEW`` gives ``(ClassRef, str)``; ``--merge NEW=OLD,OLD`` (``right_is_list``) gives
    ``(str, [ClassRef, ...])``.
    """
    parts = split_escaped(text, "=", maxsplit=1)
    if len(parts) != 2:
        raise ValueError(f"{text!r}: expected {'NEW=OLD,OLD' if right_is_list else 'OLD=NEW'} "
                         "(write \\= for an '=' inside a name)")
    left, right = parts
    if right_is_list:
        new = _unescape(left)
        if not new:
            raise ValueError(f"{text!r}: the merged class needs a name")
        return new, parse_list(right)
    new_name = _unescape(right)
    if not new_name:
        raise ValueError(f"{text!r}: the new name is empty")
    return ClassRef.parse(left), new_name


def resolve(ref: ClassRef, categories: Sequence[dict[str, Any]], source: Any, option: str) -> list[Any]:
    """The ids of the categories ``ref`` names (every category with the name; one for ``id:N``).

    Raises:
        InvalidDatasetError: no category has that id or name.
    """
    if ref.id is not None:
        ids = [c["id"] for c in categories if c["id"] == ref.id]
    else:
        ids = [c["id"] for c in categories if str(c["name"]) == ref.name]
    if not ids:
        known = ", ".join(f"{c['name']} (id {c['id']})" for c in categories[:12])
        more = f" and {len(categories) - 12} more" if len(categories) > 12 else ""
        raise InvalidDatasetError(f"{source}: {option}: no category {ref} (categories: {known}{more})")
    return ids

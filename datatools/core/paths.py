"""Keeping every read and write inside the folders the user gave."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["file_name_problem", "resolve_under"]


def file_name_problem(file_name: object) -> str | None:
    """Why ``file_name`` may not be used as a path under an image root, or ``None`` when it is fine.

    Refused: non-strings, empty names, absolute paths (POSIX or Windows), and any ``..`` component.
    """
    if not isinstance(file_name, str) or not file_name.strip():
        return "file_name must be a non-empty string"
    if "\x00" in file_name:
        return "file_name contains a NUL byte"
    posix, windows = PurePosixPath(file_name), PureWindowsPath(file_name)
    if posix.is_absolute() or windows.is_absolute() or windows.drive:
        return f"file_name {file_name!r} is an absolute path; it must be relative to the image root"
    if ".." in posix.parts or ".." in windows.parts:
        return f"file_name {file_name!r} escapes the image root ('..')"
    return None


def resolve_under(root: str | os.PathLike[str], file_name: str) -> Path:
    """Join ``root`` and a relative ``file_name`` after checking it stays under ``root``.

    Raises:
        ValueError: with the reason from :func:`file_name_problem`.
    """
    problem = file_name_problem(file_name)
    if problem:
        raise ValueError(problem)
    return Path(root) / file_name

"""Keeping every read and write inside the folders the user gave."""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

__all__ = ["file_name_problem", "require_folder", "resolve_under"]


def require_folder(path: str | os.PathLike[str], what: str = "image folder", hint: str = "") -> Path:
    """``path`` as a Path when it is a folder; otherwise an error that says whether it is missing or a file.

    Args:
        path: the folder the user gave.
        what: what it should be, for the message (``image folder``, ``dataset folder``, ...).
        hint: appended to the message, e.g. ``(give --images)``.

    Raises:
        UnreadableFileError: ``path`` does not exist, or is a file.

    Example:
        >>> require_folder("README.md")
        Traceback (most recent call last):
        UnreadableFileError: README.md: is a file, expected an image folder
    """
    from datatools.core.errors import UnreadableFileError

    folder = Path(path)
    tail = f" {hint}" if hint else ""
    if folder.is_file():
        raise UnreadableFileError(f"{folder}: is a file, expected an {what}{tail}" if what[0] in "aeiou"
                                  else f"{folder}: is a file, expected a {what}{tail}")
    if not folder.is_dir():
        raise UnreadableFileError(f"{folder}: {what} not found{tail}")
    return folder


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

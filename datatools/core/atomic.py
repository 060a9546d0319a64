"""Atomic writes: a file or a whole output directory appears complete or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from datatools.core.errors import OutputExistsError

__all__ = ["atomic_write_bytes", "atomic_write_json", "atomic_write_text", "output_dir"]


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write UTF-8 ``text`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any, indent: int | None = None) -> None:
    """Write ``obj`` as JSON atomically; the same object always gives the same bytes."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent, allow_nan=False)
    atomic_write_text(path, text + "\n")


def check_output_dir(out: str | os.PathLike[str], overwrite: bool) -> Path:
    """Refuse an existing non-empty ``out`` unless ``overwrite``; return it as a Path.

    Raises:
        OutputExistsError: ``out`` is a non-empty directory (or a file) and ``overwrite`` is False.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a directory")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out}: output directory is not empty (pass --overwrite to replace it)")
    return out


@contextlib.contextmanager
def output_dir(out: str | os.PathLike[str], overwrite: bool = False) -> Iterator[Path]:
    """Stage a whole output directory and move it into place only when the block succeeds.

    The block writes into a hidden sibling folder. On success it replaces ``out``; on any error (or Ctrl-C) the
    staging folder is removed and ``out`` is left exactly as it was, so an interrupted run leaves nothing
    half-written.

    Example:
        >>> with output_dir("runs/masks") as tmp:
        ...     (tmp / "classes.json").write_text("[]")
    """
    out = check_output_dir(out, overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        yield staging
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".old", dir=out.parent))
            os.replace(out, trash / "old")
            os.replace(staging, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise

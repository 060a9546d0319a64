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

from datatools.core.engine import share_paths
from datatools.core.errors import OutputExistsError

__all__ = ["atomic_path", "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "output_dir",
           "plain_mode"]


def _umask() -> int:
    """The process umask, read without changing it where Linux allows (``os.umask`` must set it to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):  # pragma: no cover - not Linux
        pass
    mask = os.umask(0o022)  # pragma: no cover
    os.umask(mask)  # pragma: no cover
    return mask  # pragma: no cover


def plain_mode(directory: bool = False) -> int:
    """The mode a plain ``open(path, "w")`` (or ``mkdir``) gives under the user's umask: 0o644 (0o755) with 022.

    ``tempfile`` makes its files 0o600 and folders 0o700 whatever the umask; renamed into place they would keep
    those modes and teammates on a shared machine could not read the outputs. Every temporary file or folder that
    becomes an output gets this mode first.

    Example:
        >>> os.umask(0o022) is not None and oct(plain_mode()), oct(plain_mode(directory=True))
        ('0o644', '0o755')
    """
    return (0o777 if directory else 0o666) & ~_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A temporary path next to ``path`` for a writer that wants a file name (``torch.save``, ``np.savez``); it is
    renamed onto ``path`` when the block succeeds, with the mode of a plain ``open``, and removed when it fails.

    Example:
        >>> with atomic_path("run/best.pt") as tmp:
        ...     torch.save(state, tmp)
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    tmp = Path(name)
    try:
        os.fchmod(fd, plain_mode())
        os.close(fd)
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename it.

    The file gets the mode a plain ``open`` would give it under the umask (see :func:`plain_mode`).
    """
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


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
        staging.chmod(plain_mode(directory=True))  # mkdtemp's 0o700 would stay on the output folder
        share_paths([staging], writable=True)  # on a cluster, the workers write into it
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

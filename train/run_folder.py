"""A fit's run folder: made fresh, resumed from ``last.pt``, and after a failure left resumable or removed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from datatools.core.atomic import check_output_dir
from datatools.core.errors import DatatoolsError

from .checkpoint import load_checkpoint

__all__ = ["after_failure", "prepare_run_folder"]


def prepare_run_folder(out: Path, resume: bool, overwrite: bool, main: bool) -> dict[str, Any] | None:
    """The state to resume from (``out/last.pt``), or None after checking that ``out`` may be written.

    Raises:
        DatatoolsError: ``resume`` without a ``last.pt``.
        OutputExistsError: a non-empty ``out`` without ``overwrite``.
    """
    if resume:
        if not (out / "last.pt").is_file():
            raise DatatoolsError(f"{out / 'last.pt'}: nothing to resume (no last.pt in the run folder)")
        return load_checkpoint(out / "last.pt")
    check_output_dir(out, overwrite)
    if main and out.is_dir() and overwrite:
        shutil.rmtree(out)
    return None


def after_failure(out: Path, existed: bool, epoch: int, epochs: int) -> str:
    """Leave a resumable run (one with ``last.pt``) or nothing, and say which.

    Args:
        out: the run folder.
        existed: ``out`` was there before the fit (empty, or a run being resumed): its contents go, it stays.
        epoch: the last epoch ``last.pt`` holds (0: none).
        epochs: the epochs asked for.
    """
    if (out / "last.pt").is_file():
        return (f"interrupted in epoch {epoch + 1}/{epochs}; {out} holds the run up to epoch {epoch} (last.pt): "
                f"continue it with the same `datatools train fit` command plus --resume (--out {out} --resume)")
    if existed:
        for child in out.iterdir():
            shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    else:
        shutil.rmtree(out, ignore_errors=True)
    return f"interrupted before the first epoch ended; removed the partial run folder {out}, nothing was kept"

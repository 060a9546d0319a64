"""Options and error handling shared by every command. Typer lives only in ``datatools/cli``."""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError
from datatools.core.imageio import MaskFormat
from datatools.core.issues import Issue
from datatools.core.rarity import RARE_HELP

F = TypeVar("F", bound=Callable[..., Any])

EXIT_BAD_INPUT = 2

AnnOpt = Annotated[Path | None, typer.Option("--ann", help="COCO instance json.", show_default=False)]
ImagesOpt = Annotated[
    Path | None, typer.Option("--images", help="Folder that images[].file_name is relative to.", show_default=False)
]
DataOpt = Annotated[
    Path | None,
    typer.Option("--data", help="Dataset folder written by datatools (annotations.json + images/).",
                 show_default=False),
]
OutOpt = Annotated[Path, typer.Option("--out", help="Output folder (must be empty or absent).")]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace a non-empty --out.")]
WorkersOpt = Annotated[
    int | None, typer.Option("--workers", min=1, help="Processes for per-image work [default: all cores].",
                             show_default=False)
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Seed; the same inputs and seed give byte-identical outputs.")]
SkipInvalidOpt = Annotated[
    bool,
    typer.Option("--skip-invalid", help="Drop records with errors (reported on stderr) instead of refusing."),
]
RareThresholdOpt = Annotated[float, typer.Option("--rare-threshold", min=0.0, max=1.0, help=RARE_HELP)]
PartialFoldsOpt = Annotated[
    bool,
    typer.Option("--partial-folds", help="Accept a --folds table that covers only part of the dataset (or lists "
                 "images it lacks); only the images in both are used."),
]
ProgressOpt = Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")]
MaskFormatOpt = Annotated[
    MaskFormat,
    typer.Option("--mask-format", help="Mask PNGs as palette (class colours in viewers; PIL and mmseg read the class "
                 "values, cv2.imread reads colours) or gray (cv2.imread with IMREAD_UNCHANGED reads the values)."),
]


class _ClosedStdoutTolerant:
    """``sys.stdout`` that, once the reader has gone (``datatools ... | head -1``), sends the rest of the output to
    the null device instead of raising BrokenPipeError, so the command ends as it would have (its files written,
    its own exit code) without a traceback or Click's exit code 1."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream

    def _closed(self) -> None:
        devnull = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(devnull, self._stream.fileno())  # pending bytes, and the interpreter's last flush, go nowhere
        finally:
            os.close(devnull)

    def write(self, text: str) -> int:
        try:
            return int(self._stream.write(text))
        except BrokenPipeError:
            self._closed()
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            self._closed()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def tolerate_closed_stdout() -> None:
    """Make a closed stdout quiet for the rest of the process (the entry points call it first)."""
    if not isinstance(sys.stdout, _ClosedStdoutTolerant) and hasattr(sys.stdout, "fileno"):
        sys.stdout = _ClosedStdoutTolerant(sys.stdout)  # type: ignore[assignment]


def with_option_names(message: str) -> str:
    """A config's message (raised while options are turned into a config) with its field names written as the
    options that set them: ``size_hw`` as ``--size``, ``target_share`` as ``--target-share``, and a leading
    ``size must ...`` as ``--size must ...`` (a CLI flag is the API parameter name with dashes).

    Example:
        >>> with_option_names("size_hw (0, 0) is too small for a 2x2 grid")
        '--size (0, 0) is too small for a 2x2 grid'
    """

    def option(match: re.Match[str]) -> str:
        return "--" + re.sub(r"_(hw|wh|yx|xy)$", "", match.group(0)).replace("_", "-")

    message = re.sub(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b", option, message)  # snake_case: a field name
    return re.sub(r"^[a-z]+(?= must\b)", option, message)


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print one ``error:`` line on stderr and return the exit to raise."""
    print("error: " + " ".join(str(message).split()), file=sys.stderr)
    return typer.Exit(code)


def handle_errors(fn: F) -> F:
    """Turn DatatoolsError into one line on stderr and exit code 2; never a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except DatatoolsError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt as exc:  # an Interrupted says what was left; outputs are staged otherwise
            raise fail(str(exc) or "interrupted; nothing was written", 130) from None

    return wrapper  # type: ignore[return-value]


def report_dropped(dropped: list[Issue]) -> None:
    """Tell the user which records --skip-invalid dropped."""
    if not dropped:
        return
    print(f"warning: --skip-invalid dropped {len(dropped)} record(s) with errors:", file=sys.stderr)
    for issue in dropped:
        print("  " + issue.line(), file=sys.stderr)


def open_dataset(
    ann: Path | None,
    images: Path | None,
    data: Path | None,
    *,
    skip_invalid: bool = False,
    workers: int | None = None,
    check_files: bool = True,
    progress: bool = True,
) -> Dataset:
    """Read a dataset by the CLI convention and report what --skip-invalid dropped."""
    ds = Dataset.open(ann, images, data, skip_invalid=skip_invalid, workers=workers, check_files=check_files,
                      progress=progress)
    report_dropped(ds.dropped)
    return ds

"""Options and error handling shared by every command. Typer lives only in ``datatools/cli``.

Every option that more than one command takes is defined here once, with its parser; every value is checked
when the command line is parsed, before any work starts. A bad value, like any other usage error, ends the
command with one ``error: ...`` line on stderr and exit code 2 (:class:`CommandGroup`).

Help texts are Rich markup: a computed default is given as ``show_default="..."`` (Typer prints it as
``[default: ...]``), never written in brackets inside the help, where Rich would swallow it as a tag.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import inspect
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from typer import core as typer_core
from typer.core import TyperGroup

from datatools.core.dataset import Dataset
from datatools.core.engine import DEFAULT_RETRIES, SCHEDULER_ENV, Engine, use_engine
from datatools.core.errors import DatatoolsError
from datatools.core.imageio import MaskFormat
from datatools.core.issues import Issue
from datatools.core.lateral import check_spec
from datatools.core.masks import Crowd, OverlapPolicy
from datatools.core.rarity import RARE_HELP
from datatools.formats.submission_dir import OLD_STYLE_NAMES, SubmissionStyle

F = TypeVar("F", bound=Callable[..., Any])

EXIT_BAD_INPUT = 2

# Typer >= 0.2x carries its own copy of click (typer._click); older ones use click itself.
_click: Any = getattr(typer_core, "_click", None) or importlib.import_module("click")
ClickException: type[Exception] = _click.exceptions.ClickException
_MissingParameter: type[Exception] = _click.exceptions.MissingParameter
_NoArgsIsHelp: Any = getattr(_click.exceptions, "NoArgsIsHelpError", ())


def one_line(message: str) -> str:
    """``message`` with every run of whitespace (newlines included) made one space."""
    return " ".join(str(message).split())


def usage_error_line(exc: Any) -> str:
    """The one ``error:`` line of a usage error (a click ``ClickException``): the option, then what is wrong."""
    if isinstance(exc, typer.BadParameter) and not isinstance(exc, _MissingParameter):
        hint = exc.param_hint
        if hint is None and exc.param is not None:
            opts = list(getattr(exc.param, "opts", None) or [])
            hint = next((o for o in opts if o.startswith("--")), opts[0] if opts else exc.param.name)
        if isinstance(hint, Sequence) and not isinstance(hint, str):
            hint = " / ".join(hint)
        hint = str(hint).replace("'", "") if hint else ""
        message = exc.message.removeprefix("Value error, ")  # Typer's wording for a value outside a choice
        return "error: " + one_line(f"{hint}: {message}" if hint else message)
    return "error: " + one_line(exc.format_message())


class CommandGroup(TyperGroup):
    """The root command group: usage errors (unknown option, bad value, missing option) print one line.

    Typer draws them in a box over several lines; this prints ``error: --crowd: 'drop' is not one of 'class',
    'ignore'.`` on stderr and exits 2, like every other refused input. Only the root's ``main`` runs, so giving
    this class to the root app covers every subcommand.
    """

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except _NoArgsIsHelp as exc:  # the help was printed: nothing else to say
            sys.exit(exc.exit_code)
        except ClickException as exc:
            print(usage_error_line(exc), file=sys.stderr)
            sys.exit(getattr(exc, "exit_code", EXIT_BAD_INPUT))
        except typer.Abort:
            print("Aborted!", file=sys.stderr)
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)


def _overlap(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return str(OverlapPolicy.parse(value))
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None


def parse_size_hw(value: str) -> tuple[int, int]:
    """``N``, ``H,W`` or ``HxW`` -> ``(height, width)``, both positive.

    Example:
        >>> parse_size_hw("512"), parse_size_hw("480,640")
        ((512, 512), (480, 640))
    """
    parts = [p.strip() for p in re.split(r"[,x]", str(value).lower())]
    try:
        hw = tuple(int(p) for p in parts)
    except ValueError:
        raise ValueError(f"must be N or H,W, got {value!r}") from None
    if len(hw) not in (1, 2) or min(hw) < 1:
        raise ValueError(f"must be N or H,W with positive numbers, got {value!r}")
    return (hw[0], hw[0]) if len(hw) == 1 else (hw[0], hw[1])


def size_callback(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        parse_size_hw(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def _submission_style(value: str | None) -> SubmissionStyle | None:
    if value is None:
        return None
    try:
        style = SubmissionStyle.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    if value in OLD_STYLE_NAMES:
        print(f"warning: the submission style {value!r} is now called {style.value!r}; the old name will go",
              file=sys.stderr)
    return style


DEVICE_RE = re.compile(r"auto|cpu|mps|cuda(:\d+)?")


def _device(value: str) -> str:
    if not DEVICE_RE.fullmatch(value):
        raise typer.BadParameter(f"must be auto, cpu, mps, cuda or cuda:N, got {value!r}")
    return value


SCHEDULER_RE = re.compile(r"(tcp|tls|ucx)://(\[[0-9A-Fa-f:.]+\]|[^\s\[\]:/]+):\d{1,5}")


def parse_scheduler(value: str | None) -> str | None:
    """A Dask scheduler address ``PROTOCOL://HOST:PORT`` (tcp, tls or ucx), checked, or ``None``."""
    if value is not None and not SCHEDULER_RE.fullmatch(value):
        raise typer.BadParameter(f"must be an address like tcp://HOST:8786, got {value!r}")
    return value


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
    int | None, typer.Option("--workers", min=1, help="Processes for per-image work.", show_default="all cores")
]
# --engine, --scheduler and --retries: handle_errors opens the engine around a command that takes them
EngineOpt = Annotated[Engine, typer.Option("--engine", help="Where per-image work runs: local processes or a Dask "
                                           "cluster (same output bytes).")]
SchedulerOpt = Annotated[
    str | None,
    typer.Option("--scheduler", callback=parse_scheduler, metavar="tcp://HOST:PORT",
                 help=f"Dask scheduler for --engine dask (or ${SCHEDULER_ENV}).",
                 show_default="a local cluster of --workers processes"),
]
RetriesOpt = Annotated[int, typer.Option("--retries", min=0, help="Re-runs of work whose Dask worker died.")]
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
OverlapOpt = Annotated[
    str,
    typer.Option("--overlap", callback=_overlap, help="Which class a pixel claimed by several annotations gets: "
                 "smaller-on-top | order | class-priority:NAME,NAME | max-id | conflict-ignore."),
]
CrowdOpt = Annotated[Crowd, typer.Option("--crowd", help="iscrowd regions: their class, or ignore (255).")]
#: ``--size`` of every command: ``N`` or ``H,W`` (read with :func:`parse_size_hw`).
SizeOpt = Annotated[str, typer.Option("--size", callback=size_callback, metavar="N|H,W",
                                      help="Output size: N (square) or H,W.")]
OptionalSizeOpt = Annotated[str | None, typer.Option("--size", callback=size_callback, metavar="N|H,W",
                                                     help="Output size: N (square) or H,W.",
                                                     show_default="the first source image's")]
# str, not the Enum: the callback also takes the old names (OLD_STYLE_NAMES) and returns a SubmissionStyle.
SubmissionStyleOpt = Annotated[
    str,
    typer.Option("--style", callback=_submission_style, metavar="class-ids|rle",
                 help="class-ids: image_id,PredictionString (one class id per pixel of a resized mask); rle: "
                 "image_name,class,rle (one row per image and class)."),
]
SubmissionOpt = Annotated[
    str | None,
    typer.Option("--submission", callback=_submission_style, metavar="class-ids|rle",
                 help="Also write submission.csv in this style (see datatools convert submission --style).",
                 show_default=False),
]
DeviceOpt = Annotated[str, typer.Option("--device", callback=_device, help="auto (CUDA when available), cpu, mps, "
                                        "cuda or cuda:N.")]
MaskFormatOpt = Annotated[
    MaskFormat,
    typer.Option("--mask-format", help="Mask PNGs: palette (PIL and mmseg read class values, cv2.imread "
                 "colours) or gray (cv2.imread with IMREAD_UNCHANGED reads class values)."),
]


def _lateral_spec(value: str) -> str:
    try:
        return check_spec(value)
    except DatatoolsError as exc:
        raise typer.BadParameter(str(exc)) from None


LateralOpt = Annotated[str, typer.Option("--lateral-pairs", callback=_lateral_spec, help="Classes that swap when "
                                         "an image is mirrored: auto (pairs found from names like left_x/right_x, "
                                         "x-L/x-R, upper_x/lower_x), none, or LEFT=RIGHT,TOP=BOTTOM.")]


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
    print("error: " + one_line(message), file=sys.stderr)
    return typer.Exit(code)


def reflow_help(doc: str | None) -> str | None:
    """A command's docstring as its help: each prose paragraph on one line, examples kept line by line.

    Typer's Rich help keeps the line breaks of every paragraph but the first, so a paragraph broken for the
    source file reads ragged in a narrow terminal; joined, the terminal wraps it at its own width. Example
    paragraphs (lines starting with ``datatools``, and their indented continuations) keep their breaks: they are
    written to fit 80 columns, so a terminal never wraps one mid-command.
    """
    if doc is None:
        return None
    paragraphs = inspect.cleandoc(doc).split("\n\n")
    out = []
    for paragraph in paragraphs:
        lines = paragraph.splitlines()
        code = any(ln.lstrip().startswith("datatools ") or ln.startswith(" ") for ln in lines)
        out.append(paragraph if code or paragraph.startswith("\b") else " ".join(ln.strip() for ln in lines))
    return "\n\n".join(out)


def _engine_of(kwargs: dict[str, Any]) -> contextlib.AbstractContextManager[None]:
    """The engine a command's options ask for (``engine``, ``scheduler``, ``retries``, ``workers``).

    On a cluster every path option is made absolute first (workers do not share this process's working folder),
    and those that exist (all but ``--out``; each of a repeated option, e.g. ``--ckpt``) are the inputs the workers
    must see.
    """
    engine, scheduler = Engine(kwargs["engine"]), kwargs.get("scheduler")
    if engine is Engine.LOCAL:
        if scheduler is not None:
            raise DatatoolsError("--scheduler: needs --engine dask")
        return contextlib.nullcontext()
    if scheduler is None and os.environ.get(SCHEDULER_ENV):
        try:
            scheduler = parse_scheduler(os.environ[SCHEDULER_ENV])
        except typer.BadParameter as exc:
            raise DatatoolsError(f"${SCHEDULER_ENV}: {exc.message}") from None
    for key, value in kwargs.items():
        if isinstance(value, Path):
            kwargs[key] = value.absolute()
        elif isinstance(value, list | tuple) and value and all(isinstance(v, Path) for v in value):
            kwargs[key] = type(value)(v.absolute() for v in value)
    given = [p for k, v in kwargs.items() if k != "out" for p in (v if isinstance(v, list | tuple) else [v])]
    paths = [v for v in given if isinstance(v, Path) and v.exists()]
    return use_engine(engine, scheduler=scheduler, retries=kwargs.get("retries", DEFAULT_RETRIES),
                      workers=kwargs.get("workers"), paths=paths)


def handle_errors(fn: F) -> F:
    """Turn DatatoolsError into one line on stderr and exit code 2; never a traceback.

    Every command goes through it, so it also gives each command its help (:func:`reflow_help`). A command that
    takes :data:`EngineOpt` (with :data:`SchedulerOpt` and :data:`RetriesOpt`) runs inside the engine they name
    (:func:`datatools.core.engine.use_engine`): its body needs no engine code.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            if "engine" not in kwargs:
                return fn(*args, **kwargs)
            with _engine_of(kwargs):
                return fn(*args, **kwargs)
        except DatatoolsError as exc:
            raise fail(str(exc)) from None
        except KeyboardInterrupt as exc:  # an Interrupted says what was left; outputs are staged otherwise
            raise fail(str(exc) or "interrupted; nothing was written", 130) from None

    wrapper.__doc__ = reflow_help(fn.__doc__)
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

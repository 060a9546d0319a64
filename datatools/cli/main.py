"""The ``datatools`` command."""

from __future__ import annotations

import importlib
import sys
import warnings
from typing import Annotated, Any

import typer

from datatools import __version__
from datatools.cli._common import CommandGroup, tolerate_closed_stdout
from datatools.core.allocator import keep_freed_memory

__all__ = ["build_app", "main"]

#: Every subcommand: name -> (module, attribute, a command or a group of commands). Imported only when built:
#: ``datatools eda ...`` imports and builds eda alone (about 0.5 CPU seconds less start-up than all of them).
COMMANDS: dict[str, tuple[str, str, bool]] = {
    "validate": ("datatools.cli.validate", "validate", False),
    "convert": ("datatools.cli.convert", "app", True),
    "eda": ("datatools.cli.eda", "eda", False),
    "edit": ("datatools.cli.edit", "app", True),
    "folds": ("datatools.cli.folds", "app", True),
    "augment": ("datatools.cli.augment", "app", True),
    "clean": ("datatools.cli.clean", "clean", False),
    "pseudo-label": ("datatools.cli.pseudo", "pseudo_label", False),
    "train": ("datatools_train.cli", "app", True),  # imports no torch until a train command runs
}


def _version(value: bool) -> None:
    if value:
        typer.echo(f"datatools {__version__}")
        raise typer.Exit()


def _root(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Every command reads a dataset as --ann F --images DIR (or --data DIR) and writes to --out DIR."""
    # a class name in a script the plot font lacks (CJK in DejaVu Sans) is drawn as boxes; the tables and CSVs
    # hold the name, so matplotlib's warning per glyph and figure is noise (workers are forked: they inherit this)
    warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
    if ctx.invoked_subcommand != "train":  # per-image work, in a process that ends with the command (torch's
        keep_freed_memory()               # memory is left to torch)


def build_app(only: str | None = None) -> typer.Typer:
    """The ``datatools`` command group with every subcommand, or with ``only`` that one (the root's options,
    help and one-line usage errors are the same either way).

    Example:
        >>> build_app("eda")(["eda", "--help"])
    """
    root = typer.Typer(
        name="datatools",
        cls=CommandGroup,
        help="Understand, split, clean, grow and pseudo-label semantic-segmentation datasets.",
        no_args_is_help=True,
        pretty_exceptions_enable=False,
        add_completion=False,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    root.callback()(_root)
    for name, (module, attribute, group) in COMMANDS.items():
        if only is not None and name != only:
            continue
        target = getattr(importlib.import_module(module), attribute)
        if group:
            root.add_typer(target, name=name)
        else:
            root.command(name)(target)
    return root


def __getattr__(name: str) -> Any:
    """``app``: the whole command group, built on first use (``from datatools.cli.main import app``)."""
    if name == "app":
        app = build_app()
        globals()["app"] = app
        return app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """The ``datatools`` command (``python -m datatools``): builds only the subcommand named on the command
    line (all of them for the root's help, ``--version`` or a name it does not know)."""
    tolerate_closed_stdout()
    first = sys.argv[1] if len(sys.argv) > 1 else None
    build_app(first if first in COMMANDS else None)()

"""The ``datatools`` command."""

from __future__ import annotations

import warnings
from typing import Annotated

import typer

from datatools import __version__
from datatools.cli import augment, convert, edit, folds
from datatools.cli._common import CommandGroup, tolerate_closed_stdout
from datatools.cli.clean import clean
from datatools.cli.eda import eda
from datatools.cli.pseudo import pseudo_label
from datatools.cli.validate import validate
from datatools.core.allocator import keep_freed_memory
from datatools_train.cli import app as train_app  # imports no torch until a train command runs

app = typer.Typer(
    name="datatools",
    cls=CommandGroup,
    help="Understand, split, clean, grow and pseudo-label semantic-segmentation datasets.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"datatools {__version__}")
        raise typer.Exit()


@app.callback()
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


app.command("validate")(validate)
app.add_typer(convert.app, name="convert")
app.command("eda")(eda)
app.add_typer(edit.app, name="edit")
app.add_typer(folds.app, name="folds")
app.add_typer(augment.app, name="augment")
app.command("clean")(clean)
app.command("pseudo-label")(pseudo_label)
app.add_typer(train_app, name="train")


def main() -> None:
    """The ``datatools`` command (``python -m datatools``)."""
    tolerate_closed_stdout()
    app()

"""``python -m datatools_train ...`` (and ``torchrun -m datatools_train fit ...``): the commands of
``datatools train``."""

from __future__ import annotations

from datatools.cli._common import tolerate_closed_stdout

from .cli import app

if __name__ == "__main__":
    tolerate_closed_stdout()
    app(prog_name="python -m datatools_train")

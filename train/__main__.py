"""``python -m datatools_train ...`` (and ``torchrun -m datatools_train fit ...``): the commands of
``datatools train``."""

from __future__ import annotations

from .cli import app

if __name__ == "__main__":
    app(prog_name="python -m datatools_train")

"""``python -m train ...`` (and ``torchrun -m train fit ...``): the same commands as ``datatools train``."""

from __future__ import annotations

from train.cli import app

if __name__ == "__main__":
    app(prog_name="python -m train")

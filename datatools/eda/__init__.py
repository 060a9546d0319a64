"""``datatools eda``: the report segmentation teams ask of their data, and tables a notebook can load.

Example:
    >>> from datatools.eda import run_eda
    >>> result = run_eda("train.json", "images/", out="eda/")
"""

from __future__ import annotations

from datatools.eda.api import EdaResult, run_eda

__all__ = ["EdaResult", "run_eda"]

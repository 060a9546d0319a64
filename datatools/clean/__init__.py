"""``datatools clean``: duplicates, outlier images, annotation problems and label issues, ranked; a cleaned
dataset with ``apply``.

Example:
    >>> from datatools.clean import run_clean
    >>> result = run_clean("train.json", "images/", out="clean/", apply=True)
"""

from __future__ import annotations

from typing import Any

from datatools.clean.findings import CHECKS, DEFAULT_DROP, KINDS, Check, Finding
from datatools.clean.rules import AnnotationRules

__all__ = ["CHECKS", "DEFAULT_DROP", "KINDS", "AnnotationRules", "Check", "CleanResult", "Finding", "run_clean"]


def __getattr__(name: str) -> Any:
    # the checks import eda and cleanlab: loaded on first use, so `datatools --help` stays light
    if name in ("run_clean", "CleanResult"):
        from datatools.clean import api

        return getattr(api, name)
    raise AttributeError(f"module 'datatools.clean' has no attribute {name!r}")

"""``datatools clean``: duplicates, outlier images, annotation problems and label issues, ranked; a cleaned
dataset with ``apply``."""

from __future__ import annotations

from datatools.clean.api import CleanResult, run_clean
from datatools.clean.findings import CHECKS, DEFAULT_DROP, KINDS, Check, Finding

__all__ = ["CHECKS", "DEFAULT_DROP", "KINDS", "Check", "CleanResult", "Finding", "run_clean"]

"""Class-stratified, group-aware k-fold splits that never leak, and the audit of any split.

``make_folds`` is what ``datatools folds`` runs; ``check_folds`` / ``check_train_val`` are ``datatools folds check``.
Heavy libraries (pandas, matplotlib) are imported inside the functions that need them.
"""

from __future__ import annotations

from datatools.folds.api import FoldAssignment, FoldConfig, FoldsResult, assign_folds, make_folds
from datatools.folds.balance import balance_table, max_share_deviation, plot_balance
from datatools.folds.check import CheckReport, Leak, check_folds, check_train_val
from datatools.folds.groups import ROBOFLOW_REGEX, GroupKind, GroupSpec, ImageGroups, image_groups
from datatools.folds.labels import ImageLabels, PixelSource, Stratify, image_labels
from datatools.folds.phash import hamming_pairs, hash_files, phash_variants
from datatools.folds.provenance import Provenance, read_provenance
from datatools.folds.refine import balance_objective, refine_folds
from datatools.folds.split import GroupSplit, coverage_repair, iterative_stratification, split_groups

__all__ = [
    "ROBOFLOW_REGEX",
    "CheckReport",
    "FoldAssignment",
    "FoldConfig",
    "FoldsResult",
    "GroupKind",
    "GroupSpec",
    "GroupSplit",
    "ImageGroups",
    "ImageLabels",
    "Leak",
    "PixelSource",
    "Provenance",
    "Stratify",
    "assign_folds",
    "balance_objective",
    "balance_table",
    "check_folds",
    "check_train_val",
    "coverage_repair",
    "hamming_pairs",
    "hash_files",
    "image_groups",
    "image_labels",
    "iterative_stratification",
    "make_folds",
    "max_share_deviation",
    "phash_variants",
    "plot_balance",
    "read_provenance",
    "refine_folds",
    "split_groups",
]

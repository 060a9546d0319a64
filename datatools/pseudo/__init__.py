"""Pseudo-labelling: confident pixels of model predictions become labels, the rest ignore regions."""

from __future__ import annotations

from .api import PseudoResult, pseudo_label, targets_from_dataset, targets_from_folder
from .rule import RuleConfig, decide_multiclass, decide_multilabel
from .sources import CheckpointSource, ProbabilitySource, ResultsSource

__all__ = [
    "CheckpointSource",
    "ProbabilitySource",
    "PseudoResult",
    "ResultsSource",
    "RuleConfig",
    "decide_multiclass",
    "decide_multilabel",
    "pseudo_label",
    "targets_from_dataset",
    "targets_from_folder",
]

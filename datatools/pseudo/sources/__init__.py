"""Sources of predictions for pseudo-labelling: checkpoints, saved probabilities, COCO results files."""

from __future__ import annotations

from .base import Decision, Source, Target
from .checkpoints import CheckpointSource
from .probabilities import ProbabilitySource
from .results import ResultsSource

__all__ = ["CheckpointSource", "Decision", "ProbabilitySource", "ResultsSource", "Source", "Target"]

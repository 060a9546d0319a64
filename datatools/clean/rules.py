"""Thresholds of the annotation checks (light: the CLI reads its defaults without importing the checks)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["AnnotationRules"]


@dataclass(frozen=True)
class AnnotationRules:
    """Thresholds of the annotation checks.

    Attributes:
        min_area: objects of fewer pixels are tiny.
        min_thickness: objects thinner on average (pixel area / longer box side) are slivers.
        min_fill: polygons filling less of their box are far from their box (self-crossing or stray points).
        iou: mask IoU at or above which two annotations are the same object.
        min_class_instances: classes with fewer objects get no size-outlier check.
    """

    min_area: int = 16
    min_thickness: float = 2.0
    min_fill: float = 0.15
    iou: float = 0.9
    min_class_instances: int = 8

    def __post_init__(self) -> None:
        if not 0.0 < self.iou <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {self.iou}")
        if self.min_area < 0 or self.min_thickness < 0 or not 0.0 <= self.min_fill <= 1.0:
            raise ValueError("min_area and min_thickness must be >= 0 and min_fill in [0, 1]")

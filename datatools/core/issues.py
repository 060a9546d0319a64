"""Problems found in a dataset, each with a severity and the record it concerns."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import Enum
from typing import Any

__all__ = ["Issue", "Severity", "summarize"]


class Severity(str, Enum):
    """How bad a problem is. ``error``: the dataset cannot be used as is; ``warning``: usable, but look;
    ``info``: worth knowing."""

    ERROR = "error"
    WARNING = "warning"
    INFO = "info"


@dataclass(frozen=True)
class Issue:
    """One problem in a dataset.

    Attributes:
        severity: error, warning or info.
        code: a stable kebab-case name (``duplicate-image-id``), for filtering and tests.
        message: one line for a person, naming the record.
        file: the file the problem is in (annotation json or image file).
        section: ``images``, ``annotations``, ``categories`` or ``file`` for the whole file.
        index: position of the record in its section, or ``None``.
        record_id: the record's ``id`` when it has one.
    """

    severity: Severity
    code: str
    message: str
    file: str
    section: str = "file"
    index: int | None = None
    record_id: Any = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["severity"] = self.severity.value
        return d

    def line(self) -> str:
        """``file: severity: message [code]``, the form printed by the CLI."""
        return f"{self.file}: {self.severity.value}: {self.message} [{self.code}]"


def summarize(issues: list[Issue]) -> dict[str, int]:
    """Counts per severity, e.g. ``{"error": 2, "warning": 0, "info": 5}``."""
    counts = {s.value: 0 for s in Severity}
    for issue in issues:
        counts[issue.severity.value] += 1
    return counts

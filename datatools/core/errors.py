"""Errors raised by datatools.

Every error names the file and what is wrong with it. The CLI turns a :class:`DatatoolsError` into one line on
stderr and exit code 2; library code never calls ``sys.exit``.
"""

from __future__ import annotations

__all__ = [
    "DatatoolsError",
    "Interrupted",
    "InvalidDatasetError",
    "OutputExistsError",
    "UnreadableFileError",
]


class DatatoolsError(Exception):
    """Base class of every error datatools raises on purpose."""


class UnreadableFileError(DatatoolsError, OSError):
    """A file cannot be read at all (missing, not JSON, not an image, truncated)."""


class InvalidDatasetError(DatatoolsError, ValueError):
    """The dataset can be read but its content is broken (see ``datatools validate``)."""


class OutputExistsError(DatatoolsError, FileExistsError):
    """The output directory exists and is not empty, and ``overwrite`` was not given."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C, with a message saying what the interrupted command left behind (a resumable run, or nothing).

    Not a :class:`DatatoolsError`: the CLI prints the message as its one line and exits 130, as for any Ctrl-C.
    """

"""Where per-image work runs: ``local`` (the process pool of :mod:`datatools.core.parallel`) or ``dask`` (a Dask
distributed cluster, :mod:`datatools.core.dask_engine`).

The engine is chosen once per command with :func:`use_engine`; every ``parallel_map`` inside the block then runs on
it, with the same ordered results and per-item seeds, so the outputs are byte-identical whatever the engine. The
CLI opens it for every command that takes ``--engine`` (``cli/_common.handle_errors``); a library user writes::

    with use_engine("dask", scheduler="tcp://10.0.0.5:8786"):
        datatools.convert_masks(...)

Workers read inputs and write into the staging folder of ``--out`` through paths every node sees: before any work,
:func:`share_paths` checks that the workers see them (output folders call it for their staging folder).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING

from datatools.core.errors import DatatoolsError

if TYPE_CHECKING:
    try:
        from datatools.core.dask_engine import DaskEngine
    except ImportError as exc:
        raise DatatoolsError(f"--engine dask needs Dask distributed ({exc}): pip install 'datatools[dask]'") from None

__all__ = ["DEFAULT_RETRIES", "SCHEDULER_ENV", "Engine", "active_engine", "share_paths", "use_engine"]

#: environment variable read when ``--engine dask`` is given without ``--scheduler``
SCHEDULER_ENV = "DATATOOLS_SCHEDULER"
#: times a batch is re-run after the worker running it died
DEFAULT_RETRIES = 3


class Engine(str, Enum):
    """What runs ``parallel_map``: this machine's process pool, or a Dask distributed cluster."""

    LOCAL = "local"
    DASK = "dask"


_ACTIVE: DaskEngine | None = None


def active_engine() -> DaskEngine | None:
    """The Dask engine of the running command, or ``None`` for the local process pool."""
    return _ACTIVE


def share_paths(paths: Iterable[str | os.PathLike[str]], writable: bool = False) -> None:
    """Check that the workers of the active engine see ``paths`` (``writable``: and can write into them); a
    no-op on the local engine.

    Raises:
        DatatoolsError: a worker does not see one of them (one line naming the path and the worker).
    """
    if _ACTIVE is not None:
        _ACTIVE.check_visible([Path(p) for p in paths], writable=writable)


@contextlib.contextmanager
def use_engine(engine: Engine | str = Engine.LOCAL, *, scheduler: str | None = None,
               retries: int = DEFAULT_RETRIES, workers: int | None = None,
               paths: Iterable[str | os.PathLike[str]] = ()) -> Iterator[None]:
    """Run every ``parallel_map`` of the block on ``engine``.

    Args:
        engine: ``local`` (nothing changes) or ``dask``.
        scheduler: address of a running Dask scheduler (``tcp://HOST:8786``); ``None`` reads
            ``$DATATOOLS_SCHEDULER``, and without it a local cluster of ``workers`` processes (bound to 127.0.0.1)
            is started for the block and stopped after it.
        retries: times a batch whose worker died is re-run before the command fails.
        workers: worker processes of the local cluster (default: all cores).
        paths: inputs the workers must see; checked before the block runs.

    Raises:
        DatatoolsError: dask is not installed, the scheduler cannot be reached, or a worker does not see a path.
    """
    global _ACTIVE
    if Engine(engine) is Engine.LOCAL:
        yield
        return
    try:
        from datatools.core.dask_engine import DaskEngine
    except ImportError as exc:
        raise DatatoolsError(f"--engine dask needs Dask distributed ({exc}): pip install 'datatools[dask]'") from None

    address = scheduler or os.environ.get(SCHEDULER_ENV) or None
    opened = DaskEngine.open(address, retries=retries, workers=workers)
    previous, _ACTIVE = _ACTIVE, opened
    try:
        opened.check_visible([Path(p) for p in paths])
        yield
    finally:
        _ACTIVE = previous
        opened.close()

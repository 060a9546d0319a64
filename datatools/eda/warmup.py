"""Load the output phase's libraries in the parent while the image pass runs, once for every worker.

The figures and tables of the report are made over a pool forked after the pass; a worker that imports
matplotlib (about 0.8 CPU seconds) and pyarrow itself pays that in every worker. Imported once in the parent, in a
thread started when the pass's own workers already exist (never fork while another thread imports), the
modules, the font cache and a first drawn text are inherited by every output worker for free.

pyarrow also imports pandas (0.6 CPU seconds) the first time it converts an array, only to ask whether the
array is a pandas object: :func:`arrays_without_pandas` tells it, in a pool worker, that pandas is absent.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import multiprocessing
import sys
import threading
from collections.abc import Iterator
from typing import Any

__all__ = ["arrays_without_pandas", "start_warmup"]


def _warm() -> None:
    import pyarrow  # noqa: F401
    import pyarrow.parquet  # noqa: F401
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(1, 1), dpi=20)  # loads the font cache and the font; a drawn text lays out glyphs
    fig.text(0.5, 0.5, "0.1k%")
    FigureCanvasAgg(fig).draw()


def start_warmup() -> threading.Thread:
    """Import the output phase's libraries in a daemon thread; ``join`` it before forking the output pool.

    Call it only when the pass's workers have been forked (a fork while this thread holds a lock would copy
    the lock held).

    Example:
        >>> thread = start_warmup(); thread.join()
    """
    thread = threading.Thread(target=_warm, name="eda-warmup", daemon=True)
    thread.start()
    return thread


@contextlib.contextmanager
def arrays_without_pandas() -> Iterator[None]:
    """In a pool worker that has not imported pandas: pyarrow's first array conversion finds pandas absent
    instead of importing it. Elsewhere (the parent, or where pandas is loaded) nothing changes: pyarrow
    remembers the answer for the life of the process, which only a pool worker may be denied.

    Example:
        >>> with arrays_without_pandas():
        ...     pyarrow.array(np.arange(3))
    """
    if "pandas" in sys.modules or multiprocessing.parent_process() is None:
        yield
        return
    blocker = _NoPandas()
    sys.meta_path.insert(0, blocker)  # `import pandas` now raises ImportError
    try:
        yield
    finally:
        sys.meta_path.remove(blocker)


class _NoPandas(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == "pandas" or fullname.startswith("pandas."):
            raise ModuleNotFoundError(f"No module named {fullname!r}", name=fullname)
        return None

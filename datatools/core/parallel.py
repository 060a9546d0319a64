"""Ordered parallel map over a process pool, with a progress bar and per-item seeds.

The pool is this machine's, or a Dask cluster's when the command runs with ``--engine dask``
(:mod:`datatools.core.engine`): the same items, seeds and order either way.
"""

from __future__ import annotations

import gc
import multiprocessing as mp
import os
import signal
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from datatools.core.allocator import keep_freed_memory
from datatools.core.engine import active_engine

__all__ = ["apply_job", "default_workers", "guided_batches", "item_seed", "parallel_imap", "parallel_map",
           "worker_cache"]

T = TypeVar("T")
R = TypeVar("R")

_FN: Callable[..., Any] | None = None  # the mapped function, installed in each worker once
_CACHE: OrderedDict[Hashable, Any] = OrderedDict()  # worker_cache's values, the newest last
_CACHE_LOCK = threading.Lock()
#: values worker_cache keeps per process (a model or two, not one per run a long-lived worker served)
CACHE_SIZE = 2


def default_workers() -> int:
    """All cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def item_seed(seed: int, index: int) -> int:
    """A 32-bit seed for item ``index`` derived from ``seed``; independent of worker count and order."""
    return int(np.random.SeedSequence([int(seed), int(index)]).generate_state(1)[0])


def worker_cache(key: Hashable, build: Callable[[], R]) -> R:
    """``build()`` once per process for ``key``, then the same value: what every item of a map needs and is costly
    to make (a model), made once per worker (a process of the local pool, or of a Dask cluster), not per item.

    The :data:`CACHE_SIZE` most recently used keys are kept. Put in ``key`` what makes the value (e.g. the files
    and their modification times), so a changed input is built again. Threads of one worker wait for one build.

    Example:
        >>> worker_cache(("squares", 3), lambda: [i * i for i in range(3)])
        [0, 1, 4]
    """
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]  # type: ignore[no-any-return]
        value = build()
        _CACHE[key] = value
        while len(_CACHE) > CACHE_SIZE:
            _CACHE.popitem(last=False)
        return value


def _init(fn: Callable[..., Any], tune: bool = False) -> None:
    global _FN
    _FN = fn
    if tune:  # a worker: its memory is datatools' to manage
        keep_freed_memory()
        # Ctrl-C reaches every process of the terminal's group: the parent alone handles it (it stops the pool and
        # prints one line); a worker that raised KeyboardInterrupt too would print a traceback of its own
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def apply_job(fn: Callable[..., Any], job: tuple[int, Any, int | None]) -> Any:
    """``fn`` on one job ``(index, item, base seed)``: ``fn(item)``, or ``fn(item, item_seed(seed, index))``."""
    index, item, seed = job
    return fn(item) if seed is None else fn(item, item_seed(seed, index))


def _call(job: tuple[int, Any, int | None]) -> Any:
    assert _FN is not None
    return apply_job(_FN, job)


def _call_batch(batch: list[tuple[int, Any, int | None]]) -> list[Any]:
    return [_call(job) for job in batch]


def guided_batches(n: int, workers: int, smallest: int = 1) -> list[int]:
    """Batch sizes for ``n`` items that shrink as the work runs out (guided scheduling): each a quarter of an even
    share of what is left, at least ``smallest``. Few batches (each one a message and a wake-up of this process,
    which costs its workers CPU time) while much is left; one item at a time at the end, so no worker waits long
    for the last batch.

    Example:
        >>> guided_batches(40, 2)[:6], sum(guided_batches(40, 2))
        ([5, 5, 4, 4, 3, 3], 40)
    """
    sizes, left = [], n
    while left > 0:
        size = min(left, max(smallest, -(-left // (4 * workers))))
        sizes.append(size)
        left -= size
    return sizes


def parallel_map(
    fn: Callable[..., R],
    items: Sequence[T],
    *,
    workers: int | None = None,
    seed: int | None = None,
    desc: str = "working",
    progress: bool = True,
    chunksize: int | str | None = None,
    resources: Mapping[str, float] | None = None,
    units: Callable[[T], int] | None = None,
) -> list[R]:
    """Apply ``fn`` to every item over a process pool and return the results in input order.

    Args:
        fn: a picklable function (module level). Called as ``fn(item)``, or ``fn(item, item_seed)`` when
            ``seed`` is given, where the per-item seed depends only on ``seed`` and the item's index, so results
            do not depend on the number of workers.
        items: the work list; keep items small (records and paths, not pixels).
        workers: processes to use; ``None`` means all cores, ``1`` runs in this process. On the dask engine the
            cluster's workers are used, whatever this says.
        seed: base seed for per-item seeds, or ``None`` for functions that take no seed.
        desc: label of the progress bar (shown on stderr).
        progress: show a progress bar (only when stderr is a terminal).
        chunksize: items sent to a worker at a time (default: a few chunks per worker), or ``"guided"`` for
            batches that shrink as the work runs out (:func:`guided_batches`; for many items of a few ms each).
        resources: on the dask engine, what a worker must offer to run a batch (Dask worker resources, e.g.
            ``{"GPU": 1}`` for workers started with ``--resources GPU=1``); ignored by the local pool.
        units: what an item counts for on the progress bar (default 1; e.g. ``len`` for items that are batches of
            images, so the bar counts images).

    Returns:
        ``[fn(items[0], ...), fn(items[1], ...), ...]``.

    Example:
        >>> parallel_map(abs, [-1, 2, -3], workers=2, progress=False)
        [1, 2, 3]
    """
    return list(parallel_imap(fn, items, workers=workers, seed=seed, desc=desc, progress=progress,
                              chunksize=chunksize, resources=resources, units=units))


def parallel_imap(
    fn: Callable[..., R],
    items: Sequence[T],
    *,
    workers: int | None = None,
    seed: int | None = None,
    desc: str = "working",
    progress: bool = True,
    chunksize: int | str | None = None,
    resources: Mapping[str, float] | None = None,
    units: Callable[[T], int] | None = None,
) -> Iterator[R]:
    """:func:`parallel_map` as a generator: each result is yielded, in input order, as soon as it and those
    before it are done, so a caller that folds the results as they come holds none of them for long.

    Example:
        >>> sum(parallel_imap(abs, [-1, 2, -3], workers=2, progress=False))
        6
    """
    n = len(items)
    workers = default_workers() if workers is None or workers <= 0 else workers
    workers = min(workers, max(n, 1))
    jobs = [(i, item, seed) for i, item in enumerate(items)]
    count = [1] * n if units is None else [units(item) for item in items]
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    console = Console(stderr=True)
    # bars are for people at a terminal; in logs and pipes they would only add lines to stderr
    bar = Progress(*columns, console=console, disable=not progress or not console.is_terminal, transient=False)
    engine = active_engine()
    if engine is not None and n:
        size = chunksize if isinstance(chunksize, int) else None
        sizes = [size] * -(-n // size) if size else guided_batches(n, engine.threads(resources))
        bounds = np.minimum(np.cumsum([0, *sizes]), n).tolist()
        with bar:
            task = bar.add_task(desc, total=sum(count))
            spans = list(zip(bounds[:-1], bounds[1:], strict=True))
            for (a, b), results in zip(spans, engine.map_batches(fn, [jobs[a:b] for a, b in spans], desc, resources),
                                       strict=True):
                yield from results
                bar.advance(task, sum(count[a:b]))
        return
    if workers <= 1:
        _init(fn)
        with bar:
            task = bar.add_task(desc, total=sum(count))
            for job in jobs:
                yield _call(job)
                bar.advance(task, count[job[0]])
        return
    if chunksize == "guided":
        sizes = guided_batches(n, workers)
        bounds = np.cumsum([0, *sizes]).tolist()
        batches = [jobs[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    else:
        size = int(chunksize or max(1, min(32, n // (workers * 8))))
        batches = [jobs[a:a + size] for a in range(0, n, size)]
    method = "fork" if "fork" in mp.get_all_start_methods() else "spawn"
    # what exists now is shared with the forked workers page by page; a garbage collection in any of the processes
    # would write to every object's header and so copy all those pages: the collector leaves them alone while the
    # pool lives (gc.freeze, as the gc documentation advises before fork)
    gc.freeze()
    try:
        pool = mp.get_context(method).Pool(workers, initializer=_init, initargs=(fn, True))
        try:
            with bar:
                task = bar.add_task(desc, total=sum(count))
                for batch, results in zip(batches, pool.imap(_call_batch, batches, chunksize=1), strict=True):
                    yield from results
                    bar.advance(task, sum(count[job[0]] for job in batch))
            pool.close()
        finally:
            pool.terminate()
            pool.join()
    finally:
        gc.unfreeze()

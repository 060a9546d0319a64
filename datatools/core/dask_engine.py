"""The ``dask`` engine: ``parallel_map``'s batches as tasks on a Dask distributed cluster, results in input order.

Imported only when ``--engine dask`` is chosen (Dask is the optional extra ``datatools[dask]``).

- Bounded: at most a window of batches (two per worker thread) is in flight; the next one is submitted as the
  oldest is handed on, so the driver's memory does not grow with the dataset.
- Same bytes: each job carries its index and the base seed, exactly as on the local pool.
- The mapped function (often a ``functools.partial`` with the command's context) is scattered to the workers once
  per map, not sent with every task.
- Resources: a map may ask for Dask worker resources (``{"GPU": 1}``): its batches then run only on workers started
  with them (``dask worker ... --resources GPU=1``), and its window counts only their threads.
- Faults: a task never raises; a failure of the data (a corrupt image) comes back as a value and is raised on the
  driver once, as on the local pool. A batch whose worker died (``KilledWorker``) is re-run up to ``retries``
  times. On any error or Ctrl-C the queued batches are cancelled and the driver waits until the running ones
  have ended, so nothing writes into a staging folder after it was removed.
"""

from __future__ import annotations

import functools
import logging
import os
import pickle
import re
import signal
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import cv2
import dask
from distributed import Client, LocalCluster, WorkerPlugin, as_completed
from distributed.scheduler import KilledWorker

from datatools.core.allocator import keep_freed_memory
from datatools.core.errors import DatatoolsError

__all__ = ["DaskEngine", "start_local_cluster"]

Job = tuple[int, Any, int | None]

#: seconds to wait for a scheduler to answer, and for its first worker
CONNECT_TIMEOUT = 10
WORKER_TIMEOUT = 30
#: seconds to wait, after an error or Ctrl-C, for the batches already running to end
DRAIN_TIMEOUT = 60


class _LocalWorker(WorkerPlugin):
    """Set-up of a worker of the command's own local cluster: Ctrl-C at the terminal is the driver's alone to
    handle (a worker would print a traceback of its own)."""

    name = "datatools-local-worker"

    def setup(self, worker: Any) -> None:
        try:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # pragma: no cover - not the main thread of the worker process
            pass


def start_local_cluster(n_workers: int, threads_per_worker: int = 1) -> LocalCluster:
    """A Dask cluster of ``n_workers`` processes on this machine, every socket bound to 127.0.0.1, no dashboard
    (the scheduler's small HTTP server of health routes listens on a free port of 127.0.0.1).

    Its scheduler gives up a task at the first worker death (``allowed-failures`` 0): the driver re-runs it
    (``--retries``), so the count is the same on this cluster and on a user's.
    """
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=n_workers, threads_per_worker=threads_per_worker, processes=True,
                               host="127.0.0.1", scheduler_port=0, dashboard_address=None,
                               silence_logs=logging.ERROR,
                               scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"})
    return cluster


@functools.cache
def _one_core_per_thread() -> None:
    """Once per worker process: a worker thread is one core, as a process of the local pool is (OpenCV's own
    threads would compete with the other worker threads), and freed memory is kept for the next image."""
    cv2.setNumThreads(1)  # a spawned process, not a fork: no parent thread pool to deadlock on
    keep_freed_memory()


def _run_batch(fn: Callable[..., Any], batch: list[Job]) -> tuple[bool, Any]:
    """A task: ``fn`` over one batch of jobs, as ``(True, results)``, or ``(False, error)`` when an item failed."""
    from datatools.core.parallel import apply_job

    _one_core_per_thread()
    try:
        return True, [apply_job(fn, job) for job in batch]
    except Exception as exc:  # reported by the driver once, never retried: the data would fail again
        try:
            pickle.dumps(exc)
        except Exception:  # noqa: BLE001 - an exception that cannot travel travels as its text
            return False, RuntimeError(f"{type(exc).__name__}: {exc}")
        return False, exc


def _missing(paths: list[tuple[str, bool]]) -> list[str]:
    """The paths this worker does not see (``writable``: also cannot write into)."""
    return [p for p, writable in paths
            if not os.path.exists(p) or (writable and not os.access(p, os.W_OK | os.X_OK))]


def _executing(prefix: str, dask_worker: Any = None) -> int:
    """How many tasks whose key starts with ``prefix`` this worker is running."""
    try:
        running = list(dask_worker.state.executing) + list(dask_worker.state.long_running)
    except AttributeError:  # pragma: no cover - another distributed version
        return 0
    return sum(str(getattr(ts, "key", ts)).startswith(prefix) for ts in running)


class DaskEngine:
    """A client of a Dask cluster (and the local cluster, when the engine started one)."""

    def __init__(self, client: Client, cluster: LocalCluster | None, retries: int) -> None:
        self.client = client
        self.cluster = cluster
        self.retries = retries
        self._checked: set[tuple[str, bool]] = set()

    @classmethod
    def open(cls, address: str | None, *, retries: int, workers: int | None) -> DaskEngine:
        """Connect to the scheduler at ``address``, or start a local cluster of ``workers`` processes."""
        logging.getLogger("distributed").setLevel(logging.ERROR)
        if address is None:
            from datatools.core.parallel import default_workers

            cluster = start_local_cluster(workers or default_workers())
            client = Client(cluster, set_as_default=False)
            client.register_plugin(_LocalWorker())
            return cls(client, cluster, retries)
        try:
            client = Client(address, timeout=CONNECT_TIMEOUT, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as exc:
            raise DatatoolsError(f"--scheduler {address}: no Dask scheduler answered ({exc})") from None
        try:
            client.wait_for_workers(1, timeout=WORKER_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            client.close()
            raise DatatoolsError(f"--scheduler {address}: no worker joined it within {WORKER_TIMEOUT} s") from exc
        return cls(client, None, retries)

    def close(self) -> None:
        """Disconnect; stop the local cluster when this engine started it."""
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()

    def check_visible(self, paths: Sequence[Path], writable: bool = False) -> None:
        """Fail in one line unless every worker sees every path (``writable``: and can write into it).

        Raises:
            DatatoolsError: naming the first path a worker does not see, and the worker.
        """
        wanted = [(str(Path(p).absolute()), writable) for p in paths]
        wanted = [w for w in wanted if w not in self._checked]
        if not wanted:
            return
        for worker, missing in sorted(self.client.run(_missing, wanted).items()):
            if missing:
                what = "cannot write into" if writable else "does not see"
                raise DatatoolsError(f"{missing[0]}: the dask worker {worker} {what} it; workers must see the "
                                     "inputs and the folder of --out at the same paths (a shared filesystem)")
        self._checked.update(wanted)

    def _workers(self, resources: Mapping[str, float] | None) -> list[dict[str, Any]]:
        """The scheduler's records of the workers now that offer ``resources`` (all of them for ``None``)."""
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {}).values()
        return [w for w in workers
                if all(w.get("resources", {}).get(name, 0) >= need for name, need in (resources or {}).items())]

    def offers(self, resource: str) -> bool:
        """Whether a worker of the cluster now offers ``resource`` (a name given to ``dask worker --resources``)."""
        return bool(self._workers({resource: 1e-9}))

    def threads(self, resources: Mapping[str, float] | None = None) -> int:
        """Worker threads of the cluster now (``resources``: of the workers that offer them)."""
        if not resources:
            return max(1, sum(self.client.nthreads().values()))
        return max(1, sum(int(w.get("nthreads", 1)) for w in self._workers(resources)))

    def map_batches(self, fn: Callable[..., Any], batches: Sequence[list[Job]], desc: str,
                    resources: Mapping[str, float] | None = None) -> Iterator[list[Any]]:
        """The results of each batch, in order, as soon as it and those before it are done (``resources``: each
        batch on a worker that offers them).

        Raises:
            DatatoolsError: ``resources`` are asked for and no worker offers them (the batches would wait forever).
        """
        client = self.client
        if resources and not self._workers(resources):
            wanted = " ".join(f"{k}={v:g}" for k, v in resources.items())
            raise DatatoolsError(f"{desc}: no dask worker offers the resources {wanted} (start such workers with "
                                 f"dask worker ... --resources {wanted})")
        prefix = f"datatools-{re.sub(r'[^A-Za-z0-9]+', '_', desc)}-{uuid.uuid4().hex[:8]}-"
        shared = client.scatter(fn, broadcast=True, hash=False)
        window = 2 * self.threads(resources)
        attempts = [0] * len(batches)
        pending: dict[Any, int] = {}
        done: dict[int, list[Any]] = {}
        queue = as_completed(loop=client.loop)
        next_submit = next_yield = 0

        def submit(b: int) -> None:
            nonlocal shared
            if shared.status != "finished":  # every worker holding the function died
                shared = client.scatter(fn, broadcast=True, hash=False)
            future = client.submit(_run_batch, shared, batches[b], key=f"{prefix}{b}-{attempts[b]}", pure=False,
                                   resources=dict(resources) if resources else None)
            pending[future] = b
            queue.add(future)

        try:
            while next_submit < min(len(batches), window):
                submit(next_submit)
                next_submit += 1
            for future in queue:
                b = pending.pop(future)
                try:
                    ok, value = future.result()
                except KilledWorker:
                    if attempts[b] >= self.retries:
                        raise DatatoolsError(
                            f"{desc}: the dask worker running items {batches[b][0][0]}..{batches[b][-1][0]} died "
                            f"{attempts[b] + 1} time(s) (--retries {self.retries}); see the workers' logs") from None
                    attempts[b] += 1
                    submit(b)
                    continue
                except Exception as exc:  # a task never raises: the cluster itself failed (scheduler gone, ...)
                    raise DatatoolsError(f"{desc}: the Dask cluster failed ({type(exc).__name__}: {exc})") from None
                if not ok:
                    raise value
                done[b] = value
                while next_yield in done:
                    yield done.pop(next_yield)
                    next_yield += 1
                    if next_submit < len(batches):
                        submit(next_submit)
                        next_submit += 1
        except BaseException:
            client.cancel(list(pending))
            self._drain(prefix)
            raise
        finally:
            client.cancel([shared])

    def _drain(self, prefix: str) -> None:
        """Wait (at most :data:`DRAIN_TIMEOUT` s) until no worker runs a task of this map any more."""
        deadline = time.monotonic() + DRAIN_TIMEOUT
        while time.monotonic() < deadline:
            try:
                if not any(self.client.run(_executing, prefix).values()):
                    return
            except Exception:  # noqa: BLE001 - the cluster is going away: nothing left to wait for
                return
            time.sleep(0.1)

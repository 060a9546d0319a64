"""``--engine local`` against ``--engine dask``: images/s of ``convert masks`` and ``augment mosaic``.

On one split (default: the medical-waste train split in ../shared/data, 512 images of 640x640), loaded once, each
case runs the library call the command makes (``coco_to_mask_dir``, ``run_augment``) into a fresh folder:

- ``local x2``: today's process pool, 2 workers;
- ``dask x2``: an already running local Dask cluster of 2 worker processes (127.0.0.1), reached by address as
  ``--scheduler`` would (``use_engine("dask", scheduler=...)``);
- ``dask x1``: another running cluster of 1 worker process (the scaling simulation: 1 node against 2);
- ``local x1``: the process pool with 1 worker, the same scaling on the local engine (what this machine allows:
  with 2 CPUs, the 2-worker runs share them with the driver, and on dask also with the scheduler).

The share of a CPU the benchmark's own process used (the driver, and the dask clusters' scheduler, which runs in
it) is printed per case: on 2 CPUs what it takes is not left to the 2 workers.

The cases alternate within each repeat (so the ratios compare runs that met the same machine) and each figure is
the best of ``--repeat``; the load average (``os.getloadavg``) before and after is printed, since the machine may be
shared. Targets: dask x2 >= 0.8x local x2, and dask x2 >= 1.7x dask x1.

Run from the repository root::

    .venv/bin/python benchmarks/engine.py [--ann A --images DIR] [--count 512] [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from distributed import Client

from datatools.augment import OPS, run_augment
from datatools.core.dask_engine import start_local_cluster
from datatools.core.dataset import Dataset
from datatools.core.engine import use_engine
from datatools.formats.mask_dir import coco_to_mask_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_IMAGES = REPO_ROOT / "../shared/data/medical_waste/train"


def _worker_cpu(cluster: Any) -> float:
    """CPU seconds used so far by the worker processes: a dask cluster's (asked of each worker), or this process's
    reaped children (the local pool's workers, once the pool is closed)."""
    if cluster is None:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime
    with Client(cluster, set_as_default=False) as client:
        return float(sum(client.run(_own_cpu).values()))


def _own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} CPUs"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--ann", type=Path, default=None, help="default: IMAGES/_annotations.coco.json")
    parser.add_argument("--count", type=int, default=512, help="mosaic outputs")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", type=Path, default=Path("/dev/shm") if Path("/dev/shm").is_dir() else None)
    args = parser.parse_args()
    ds = Dataset.open(args.ann or args.images / "_annotations.coco.json", args.images, progress=False)
    n_images = len(ds.coco["images"])
    print(f"{n_images} images in {args.images.resolve()}; {load()}", flush=True)
    clusters = {"dask x2": start_local_cluster(2), "dask x1": start_local_cluster(1)}

    def masks(out: Path, workers: int) -> int:
        coco_to_mask_dir(ds, out, workers=workers, progress=False)
        return n_images

    def mosaic(out: Path, workers: int) -> int:
        run_augment(ds, out, "mosaic", OPS["mosaic"].config_type(), count=args.count, seed=0, workers=workers,
                    progress=False)
        return args.count

    tasks: dict[str, Callable[[Path, int], int]] = {"convert masks": masks, "augment mosaic": mosaic}
    cases = ("local x2", "local x1", "dask x2", "dask x1")
    best: dict[tuple[str, str], float] = {}
    busy: dict[tuple[str, str], float] = {}  # share of a CPU the driver process used in the best run
    per_image: dict[tuple[str, str], float] = {}  # CPU ms of the worker processes per image (lowest of the repeats)
    try:
        for rep in range(args.repeat):
            for task, fn in tasks.items():
                for case in cases:
                    tmp = Path(tempfile.mkdtemp(prefix="engine-bench-", dir=args.tmp))
                    scheduler = clusters[case].scheduler_address if case in clusters else None
                    try:
                        with use_engine("dask" if scheduler else "local", scheduler=scheduler):
                            before = _worker_cpu(clusters.get(case))
                            start, cpu = time.perf_counter(), time.process_time()
                            n = fn(tmp / "out", 1 if case == "local x1" else 2)
                            wall = time.perf_counter() - start
                            used = _worker_cpu(clusters.get(case)) - before
                            rate = n / wall
                            driver = (time.process_time() - cpu) / wall  # this process: driver (+ dask's scheduler)
                    finally:
                        shutil.rmtree(tmp, ignore_errors=True)
                    if rate > best.get((task, case), 0.0):
                        best[task, case], busy[task, case] = rate, driver
                    if case != "local x1":
                        per_image[task, case] = min(per_image.get((task, case), float("inf")), 1e3 * used / n)
                    print(f"  repeat {rep + 1}: {task:15s} {case:9s} {rate:7.1f} images/s, driver {100 * driver:3.0f}% "
                          f"of a CPU; {load()}", flush=True)
    finally:
        for cluster in clusters.values():
            cluster.close()
    print(f"\nbest of {args.repeat}; {load()}")
    print(f"{'task':15s} {'local x2':>9s} {'local x1':>9s} {'dask x2':>9s} {'dask x1':>9s} {'dask/local':>11s} "
          f"{'dask x2/x1':>11s} {'local x2/x1':>12s}")
    for task in tasks:
        lo2, lo1, d2, d1 = (best[task, c] for c in cases)
        print(f"{task:15s} {lo2:9.1f} {lo1:9.1f} {d2:9.1f} {d1:9.1f} {d2 / lo2:10.2f}x {d2 / d1:10.2f}x "
              f"{lo2 / lo1:11.2f}x")
    print("driver process (the command, plus the scheduler of the dask clusters), share of one CPU in the best run:")
    for task in tasks:
        print(f"{task:15s} " + "  ".join(f"{c} {100 * busy[task, c]:3.0f}%" for c in cases))
    print("CPU of the worker processes per image, ms (what each node spends; the same for 1 and 2 workers means the "
          "work scales with nodes that have their own cores):")
    for task in tasks:
        print(f"{task:15s} " + "  ".join(f"{c} {per_image[task, c]:5.2f}" for c in cases if c != "local x1"))


if __name__ == "__main__":
    main()

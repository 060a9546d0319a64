"""``datatools augment``: images/s of mosaic, copy-paste and flip against the floor, with 1 and 2 workers.

The floor is the work no implementation can skip: OpenCV decoding the source images an output needs
(``cv2.imdecode`` of the file bytes) and encoding the output (``cv2.imencode``, JPEG quality 95, written to disk).
It decodes the very files each output was made from (read from the provenance of a warm-up run): 4 per mosaic,
the target plus its donors per copy-paste, 1 per flip. Measured on one split (default: the medical-waste train split in
../shared/data, 512 images of 640x640), each figure the best of ``--repeat`` runs into a fresh folder; the
datatools figure is ``run_augment`` end to end (plan, read, rasterise, transform, encode, RLE, annotations.json),
the dataset records being loaded once beforehand.

Outputs go to ``--tmp`` (default /dev/shm, a RAM disk, where there is one): both the floor and datatools write
the same bytes, and on a RAM disk the kernel's write-back of earlier runs does not land at random in later ones (on
this machine's ext4 it moved single runs by 10-20 %); pass ``--tmp /tmp`` to include the disk.

Every timed run is a fresh interpreter, as a command-line run is (see :func:`timed`), and both sides run with the
same allocator settings (:data:`ALLOCATOR`).

Targets: datatools >= 0.6x the floor per worker (1 worker against the 1-worker floor), and >= 1.7x from 1 to 2
workers. Floor and datatools runs, with 1 and with 2 workers, alternate so that the ratios and the scaling compare
runs that met the same machine (a host that slows down for a while then slows all four); the load average after
each best run is printed, and the CPU time per image (this process and its workers) is shown as a figure that
other processes on the machine disturb less than the wall clock.

Run from the repository root::

    .venv/bin/python benchmarks/augment.py [--ann A --images DIR] [--count 512] [--repeat 5] [--ops mosaic,flip]
"""

from __future__ import annotations

import argparse
import functools
import json
import multiprocessing as mp
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from datatools.augment import OPS, run_augment
from datatools.core.dataset import Dataset

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ANN = REPO_ROOT / "../shared/data/medical_waste/train/_annotations.coco.json"
DEFAULT_IMAGES = REPO_ROOT / "../shared/data/medical_waste/train"
OPS_TIMED = ("mosaic", "copy-paste", "flip")
#: glibc settings for both the floor and datatools: keep freed memory for the next image instead of returning it
#: and faulting it in again. The datatools command and datatools' workers set the same themselves
#: (datatools.core.allocator); the floor gets them here. With glibc's defaults a fresh process re-grows its heap for
#: every output, which made the floor 1.3-1.4x slower (mosaic: 8.6 against 6.0 ms per image).
ALLOCATOR = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(128 << 20)}


def _floor_one(out: str, job: tuple[int, list[str]]) -> None:
    """Decode every source of one output, encode one output image and write it."""
    index, paths = job
    decoded = [cv2.imdecode(np.fromfile(p, dtype=np.uint8), cv2.IMREAD_COLOR) for p in paths]
    ok, buf = cv2.imencode(".jpg", decoded[0], [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    with open(os.path.join(out, f"{index:06d}.jpg"), "wb") as fh:
        fh.write(buf.tobytes())


def floor(jobs: list[tuple[int, list[str]]], out: Path, workers: int = 1) -> None:
    out.mkdir(parents=True)
    fn = functools.partial(_floor_one, str(out))
    if workers <= 1:
        for job in jobs:
            fn(job)
        return
    with mp.get_context("fork").Pool(workers) as pool:
        for _ in pool.imap(fn, jobs, chunksize=max(1, len(jobs) // (workers * 8))):
            pass


def _cpu() -> float:
    """CPU seconds used by this process and its finished children (workers)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def child(args: argparse.Namespace) -> None:
    """One timed run in this fresh interpreter: load what the run needs, then time only the run; print
    ``{"wall": s, "cpu": s}``."""
    out = Path(tempfile.mkdtemp(prefix="dt-bench-", dir=args.tmp)) / "out"
    try:
        if args.child == "floor":
            cv2.setNumThreads(1)  # as datatools does: the processes fill the cores, OpenCV's threads would contend
            jobs = [(int(i), list(paths)) for i, paths in json.loads(Path(args.jobs).read_text())]
            cpu, start = _cpu(), time.perf_counter()
            floor(jobs, out, workers=args.workers)
        else:
            ds = Dataset.load(args.ann, args.images, check_files=False)
            config = OPS[args.op].config_type()
            cpu, start = _cpu(), time.perf_counter()
            run_augment(ds, out, args.op, config, count=args.count, seed=args.seed, workers=args.workers,
                        progress=False)
        print(json.dumps({"wall": time.perf_counter() - start, "cpu": _cpu() - cpu}))
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)


def timed(args: argparse.Namespace, method: str, op: str, workers: int, jobs_file: Path) -> tuple[float, float]:
    """``(wall seconds, CPU seconds)`` of one run of ``method`` in a fresh interpreter, as a command-line run would
    be (the interpreter's start and the loading of the records are not timed).

    A fresh process per run: run inside this process, a 1-worker run came out up to 10 % faster right after a
    floor run than after another datatools run (the allocator and caches warmed by the run before), which skewed
    both the ratios and the scaling.
    """
    cmd = [sys.executable, __file__, "--child", method, "--op", op, "--workers", str(workers), "--jobs",
           str(jobs_file), "--ann", str(args.ann), "--images", str(args.images), "--count", str(args.count),
           "--seed", str(args.seed)] + (["--tmp", args.tmp] if args.tmp else [])
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ALLOCATOR})
    if proc.returncode != 0:
        raise RuntimeError(f"{method} {op} x{workers} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return float(result["wall"]), float(result["cpu"])


def load() -> str:
    return "{:.2f} {:.2f} {:.2f}".format(*os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ann", type=Path, default=DEFAULT_ANN)
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES)
    parser.add_argument("--count", type=int, default=512, help="outputs per op")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--ops", default=",".join(OPS_TIMED))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tmp", default="/dev/shm" if os.access("/dev/shm", os.W_OK) else None,
                        help="folder for the outputs (default: /dev/shm when writable, else the system's temp)")
    parser.add_argument("--child", choices=("floor", "datatools"), help=argparse.SUPPRESS)
    parser.add_argument("--op", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--jobs", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    ds = Dataset.load(args.ann, args.images, check_files=False)
    by_id = {img["id"]: str(ds.image_path(img)) for img in ds.images}
    print(f"{len(ds.images)} images, {len(ds.annotations)} annotations; {os.cpu_count()} cores; "
          f"load average {load()}; best of {args.repeat}, floor and datatools runs with 1 and 2 workers interleaved; "
          "outputs under "
          f"{args.tmp or tempfile.gettempdir()}")
    print(f"{'op':<11} {'method':<10} {'workers':>7} {'images/s':>9} {'vs floor':>9} {'1->2':>6} "
          f"{'CPU ms/img':>11}  load average after")
    for op in args.ops.split(","):
        entry = OPS[op]
        config = entry.config_type()
        # one warm-up run; its provenance tells the floor which files each output was made from
        with tempfile.TemporaryDirectory(prefix="dt-bench-", dir=args.tmp) as tmp:
            run_augment(ds, Path(tmp) / "out", op, config, count=args.count, seed=args.seed, progress=False)
            made = json.loads((Path(tmp) / "out" / "annotations.json").read_text())["images"]
        jobs = [(i, [by_id[s] for s in img["datatools"]["sources"]]) for i, img in enumerate(made)]
        n = len(jobs)
        best: dict[tuple[str, int], tuple[float, float, str]] = {}
        with tempfile.TemporaryDirectory(prefix="dt-bench-", dir=args.tmp) as tmp:
            jobs_file = Path(tmp) / "jobs.json"
            jobs_file.write_text(json.dumps(jobs))
            for _ in range(args.repeat):  # 1 and 2 workers, floor and datatools, all interleaved
                for workers in (1, 2):
                    for method in ("floor", "datatools"):
                        wall, cpu = timed(args, method, op, workers, jobs_file)
                        if (method, workers) not in best or wall < best[(method, workers)][0]:
                            best[(method, workers)] = (wall, cpu, load())
        for workers in (1, 2):
            for method in ("floor", "datatools"):
                wall, cpu, ld = best[(method, workers)]
                vs = best[("floor", workers)][0] / wall
                scale = f"{best[(method, 1)][0] / wall:.2f}x" if workers == 2 else ""
                print(f"{op:<11} {method:<10} {workers:>7} {n / wall:>9.1f} {vs:>8.2f}x {scale:>6} "
                      f"{1000 * cpu / n:>11.2f}  {ld}")


if __name__ == "__main__":
    main()

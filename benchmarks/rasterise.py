"""Rasterising COCO polygons to semantic mask PNGs: datatools against the plain pycocotools loop.

Measured on one split (default: the medical-waste train split in ../shared/data), each as the best of
``--repeat`` runs into a fresh temporary folder:

1. the plain loop, written the way competition notebooks do it: ``pycocotools.coco.COCO``; per image its
   annotations, ``annToMask`` each, sort by mask pixel sum (largest first, stable), paint the class value,
   ``cv2.imwrite`` the PNG; one process;
2. the same loop over a ``multiprocessing`` pool (for reference);
3. ``datatools.formats.mask_dir.coco_to_mask_dir(ds, out, workers=N, copy_images=False, progress=False)``,
   timing the call only (``Dataset.load`` is timed separately); with ``--copy-images`` also with image copying.

Once, the datatools masks are compared with the plain-loop masks pixel for pixel. Class values come from
``ClassMap.from_categories`` in both, so the outputs are comparable.

Targets: datatools at least as fast as the plain loop per worker, and >= 1.7x from 1 to 2 workers.

Run from the repository root::

    .venv/bin/python benchmarks/rasterise.py [--ann A --images DIR] [--repeat 3] [--workers 2] [--copy-images]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import multiprocessing as mp
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path, PurePosixPath

import cv2
import numpy as np
from PIL import Image
from pycocotools.coco import COCO

from datatools.core.classes import ClassMap
from datatools.core.dataset import Dataset
from datatools.formats.mask_dir import ANN_DIR, coco_to_mask_dir

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_ANN = REPO_ROOT / "../shared/data/medical_waste/train/_annotations.coco.json"
DEFAULT_IMAGES = REPO_ROOT / "../shared/data/medical_waste/train"


# ---- the plain loop --------------------------------------------------------------------------------------
_COCO: COCO | None = None
_VALUES: dict[int, int] = {}
_OUT: str = ""


def _plain_init(coco: COCO, values: dict[int, int], out: str) -> None:
    global _COCO, _VALUES, _OUT
    _COCO, _VALUES, _OUT = coco, values, out


def _plain_one(img_id: int) -> None:
    coco = _COCO
    assert coco is not None
    img = coco.imgs[img_id]
    anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=None))
    masks = [coco.annToMask(a) for a in anns]
    order = sorted(range(len(anns)), key=lambda i: -int(masks[i].sum()))  # sorted() is stable
    mask = np.zeros((img["height"], img["width"]), dtype=np.uint8)
    for i in order:
        mask[masks[i] > 0] = _VALUES[anns[i]["category_id"]]
    cv2.imwrite(os.path.join(_OUT, str(PurePosixPath(img["file_name"]).with_suffix(".png"))), mask)


def plain_loop(coco: COCO, values: dict[int, int], out: Path, workers: int) -> None:
    out.mkdir(parents=True)
    ids = list(coco.imgs)
    if workers <= 1:
        _plain_init(coco, values, str(out))
        for img_id in ids:
            _plain_one(img_id)
        return
    with mp.get_context("fork").Pool(workers, initializer=_plain_init, initargs=(coco, values, str(out))) as pool:
        pool.map(_plain_one, ids, chunksize=max(1, len(ids) // (workers * 8)))


# ---- timing ----------------------------------------------------------------------------------------------
def _cpu() -> float:
    """CPU seconds of this process and its finished children (pool workers are joined before they count)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def best_of(repeat: int, run: Callable[[Path], None], keep: Path | None = None,
            tmpdir: str | None = None) -> tuple[float, float]:
    """(best wall time, CPU time of that run) of ``run(out)`` over ``repeat`` fresh output folders.

    The last output is moved to ``keep``.
    """
    best, best_cpu = float("inf"), 0.0
    for _ in range(repeat):
        tmp = Path(tempfile.mkdtemp(prefix="dt-bench-", dir=tmpdir))
        try:
            out = tmp / "out"
            c0, t0 = _cpu(), time.perf_counter()
            run(out)
            wall, cpu = time.perf_counter() - t0, _cpu() - c0
            if wall < best:
                best, best_cpu = wall, cpu
            if keep is not None:
                shutil.rmtree(keep, ignore_errors=True)
                shutil.move(str(out), keep)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return best, best_cpu


def compare(plain: Path, dt: Path) -> tuple[int, int, list[str]]:
    """(files compared, files differing, first differing names)."""
    files = sorted(p.relative_to(plain) for p in plain.rglob("*.png"))
    bad = []
    for rel in files:
        a = cv2.imread(str(plain / rel), cv2.IMREAD_UNCHANGED)
        with Image.open(dt / rel) as im:
            b = np.asarray(im)
        if a is None or a.shape != b.shape or not np.array_equal(a, b):
            bad.append(str(rel))
    missing = sorted({str(p.relative_to(dt)) for p in dt.rglob("*.png")} ^ {str(f) for f in files})
    return len(files), len(bad) + len(missing), (bad + missing)[:5]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ann", type=Path, default=DEFAULT_ANN, help="COCO instance json")
    parser.add_argument("--images", type=Path, default=DEFAULT_IMAGES, help="image folder")
    parser.add_argument("--repeat", type=int, default=3, help="runs per method; the best counts")
    parser.add_argument("--workers", type=int, default=2, help="workers of the parallel runs")
    parser.add_argument("--copy-images", action="store_true", help="also time datatools with image copying")
    parser.add_argument("--tmpdir", default=None,
                        help="where the output folders are written (default: the system temp folder)")
    args = parser.parse_args(argv)

    if not args.ann.is_file() or not args.images.is_dir():
        print(f"skipped: {args.ann} or {args.images} not found (the shared data is absent); "
              "give --ann and --images", file=sys.stderr)
        return 0

    t0 = time.perf_counter()
    ds = Dataset.load(args.ann, args.images, progress=False)
    t_load = time.perf_counter() - t0
    n = len(ds.images)
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # COCO() prints its progress
        coco = COCO(str(args.ann))
    t_coco = time.perf_counter() - t0
    values = {c.category_id: c.value for c in ClassMap.from_categories(coco.dataset["categories"]).classes}
    w = args.workers
    print(f"{n} images, {len(ds.annotations)} annotations from {args.ann}; best of {args.repeat}; "
          f"{os.cpu_count()} CPUs")
    print(f"Dataset.load (validation + header checks): {t_load:.2f} s;  pycocotools COCO(): {t_coco:.2f} s "
          "(not in the timings below)")

    with tempfile.TemporaryDirectory(prefix="dt-bench-keep-") as keep:
        keep_plain, keep_dt = Path(keep) / "plain", Path(keep) / "dt"
        rows: list[tuple[str, int, tuple[float, float]]] = []
        rep, tmpdir = args.repeat, args.tmpdir
        rows.append(("plain loop (pycocotools + cv2)", 1,
                     best_of(rep, lambda o: plain_loop(coco, values, o, 1), keep_plain, tmpdir)))
        rows.append(("plain loop, multiprocessing.Pool", w,
                     best_of(rep, lambda o: plain_loop(coco, values, o, w), None, tmpdir)))

        def dt(workers: int, copy: bool) -> Callable[[Path], None]:
            return lambda o: None if coco_to_mask_dir(ds, o, workers=workers, copy_images=copy,
                                                      progress=False) else None

        rows.append(("datatools coco_to_mask_dir", 1, best_of(rep, dt(1, False), keep_dt, tmpdir)))
        rows.append(("datatools coco_to_mask_dir", w, best_of(rep, dt(w, False), None, tmpdir)))
        if args.copy_images:
            rows.append(("datatools + copy_images", 1, best_of(rep, dt(1, True), None, tmpdir)))
            rows.append(("datatools + copy_images", w, best_of(rep, dt(w, True), None, tmpdir)))

        compared, differing, names = compare(keep_plain, keep_dt / ANN_DIR)
        verdict = "identical" if differing == 0 else f"{differing} DIFFER, e.g. {names}"
        print(f"equality check: {compared} datatools masks vs plain-loop masks, pixel for pixel: {verdict}")

    base = n / rows[0][2][0]
    print()
    print(f"{'method':34} {'workers':>7} {'images/s':>9} {'vs plain 1w':>11} {'CPU ms/image':>12}")
    for name, workers, (secs, cpu) in rows:
        print(f"{name:34} {workers:>7} {n / secs:>9.1f} {n / secs / base:>10.2f}x {cpu / n * 1e3:>12.2f}")
    speed = {(name, workers): n / secs for name, workers, (secs, _) in rows}
    dt1, dtw = speed[("datatools coco_to_mask_dir", 1)], speed[("datatools coco_to_mask_dir", w)]
    pl1, plw = speed[("plain loop (pycocotools + cv2)", 1)], speed[("plain loop, multiprocessing.Pool", w)]
    print()
    print(f"speed-up 1 -> {w} workers: datatools {dtw / dt1:.2f}x, plain loop {plw / pl1:.2f}x")
    ok_speed, ok_scale = dt1 >= pl1, dtw / dt1 >= 1.7
    print(f"target: datatools >= plain loop per worker: {'met' if ok_speed else 'NOT met'} "
          f"({dt1 / pl1:.2f}x); >= 1.7x from 1 to {w} workers: {'met' if ok_scale else 'NOT met'} "
          f"({dtw / dt1:.2f}x)")
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs (other processes skew timings)")
    return 0 if differing == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())

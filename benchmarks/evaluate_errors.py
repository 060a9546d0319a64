"""What the error breakdown costs: ``train evaluate`` with it (``errors=True``: errors.parquet, objects.parquet,
error_breakdown.csv, report.html with the galleries) against without it (``errors=False``), one interleaved run.

Both runs score the same checkpoint on the same images (medical_waste valid by default: 50 images, 640x640) with
the same gallery of the worst (``--worst``), torch on one thread; after one warm-up run (not counted) runs alternate
(without, with, without, with, ...) so a change in the machine's load hits both alike, and the medians of
``--repeat`` runs of each are compared, in wall-clock seconds and in this process's CPU seconds (the steadier figure
on a shared machine). The load average is printed before and after. ``--keep DIR`` keeps the last evaluation with
the breakdown.

Run from the repository root::

    .venv/bin/python benchmarks/evaluate_errors.py [--ckpt /work/models/mw128/best.pt]
        [--data ../shared/data/medical_waste/valid] [--repeat 3] [--workers 0] [--device cpu]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from datatools.core.dataset import Dataset
from datatools_train.evaluate import evaluate

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "medical_waste" / "valid"


def _load(folder: Path) -> Dataset:
    ann = folder / "_annotations.coco.json"
    return Dataset.load(ann, folder) if ann.is_file() else Dataset.from_dir(folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", type=Path, default=Path("/work/models/mw128/best.pt"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="COCO export folder or datatools folder")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--worst", type=int, default=8)
    parser.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--keep", type=Path, default=None, help="copy the last evaluation with the breakdown here")
    args = parser.parse_args()
    import shutil

    import torch

    torch.set_num_threads(1)
    ds = _load(args.data)
    print(f"{len(ds.images)} images of {args.data}, checkpoint {args.ckpt}; load average {os.getloadavg()}")
    wall: dict[bool, list[float]] = {False: [], True: []}
    cpu: dict[bool, list[float]] = {False: [], True: []}
    with tempfile.TemporaryDirectory(prefix="bench-errors-") as tmp:
        evaluate([args.ckpt], ds, Path(tmp) / "warm-up", worst=args.worst, workers=args.workers, device=args.device,
                 errors=True, progress=False)
        for r in range(args.repeat):
            for errors in (False, True):
                out = Path(tmp) / f"{'with' if errors else 'without'}_{r}"
                start, start_cpu = time.perf_counter(), time.process_time()
                evaluate([args.ckpt], ds, out, worst=args.worst, workers=args.workers, device=args.device,
                         errors=errors, progress=False)
                wall[errors].append(time.perf_counter() - start)
                cpu[errors].append(time.process_time() - start_cpu)
                print(f"run {r}: {'with' if errors else 'without'} the breakdown {wall[errors][-1]:.2f} s "
                      f"({cpu[errors][-1]:.2f} CPU s)", flush=True)
        if args.keep is not None:
            shutil.copytree(Path(tmp) / f"with_{args.repeat - 1}", args.keep, dirs_exist_ok=True)
    for name, t in (("wall", wall), ("CPU", cpu)):
        without, with_ = statistics.median(t[False]), statistics.median(t[True])
        print(f"{name}: median without {without:.2f} s ({len(ds.images) / without:.2f} img/s), with {with_:.2f} s "
              f"({len(ds.images) / with_:.2f} img/s): ratio {with_ / without:.3f}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()

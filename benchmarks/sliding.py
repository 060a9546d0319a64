"""Peak memory of ``train predict --sliding-window`` on a large image against a small one.

Issue 16's target: predicting a 4096 x 4096 image takes at most 1.3 x the peak memory of a 1024 x 1024 one, since
memory is bounded by a tile batch, not by the image. Each size runs in its own ``datatools train predict``
subprocess (CPU, ``--workers 0``) on one synthetic image (smooth noise, PNG) with an untrained model (``--weights
none``: nothing is downloaded); its peak resident set comes from ``os.wait4`` (the child's ``ru_maxrss``; torch
allocates outside Python, so tracemalloc would not see it). A 64 x 64 image gives the fixed cost of the process
(Python, torch, the model), printed for reference.

Run from the repository root::

    .venv/bin/python benchmarks/sliding.py [--sizes 64,1024,4096] [--tile 512] [--stride 384] [--classes 6]
        [--encoder mobilenet_v2] [--batch 4] [--threads 2] [--work DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

TARGET = 1.3


def _image(side: int, seed: int = 0) -> np.ndarray:
    """Smooth RGB noise: blobs a few dozen pixels wide, so the untrained model's classes vary over the image."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, side // 32), max(2, side // 32), 3), dtype=np.uint8)
    return cv2.resize(small, (side, side), interpolation=cv2.INTER_CUBIC)


def _checkpoint(path: Path, encoder: str, classes: int, size: int) -> None:
    import torch

    from datatools_train.checkpoint import ModelSpec, save_checkpoint
    from datatools_train.config import Mode
    from datatools_train.model import create_model

    torch.manual_seed(0)
    names = ({"value": 0, "category_id": None, "name": "background", "color": [0, 0, 0]},
             *({"value": v, "category_id": v, "name": f"c{v}", "color": [40 * v, 0, 0]} for v in range(1, classes)))
    spec = ModelSpec("Unet", encoder, names, Mode.MULTICLASS, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), size)
    save_checkpoint(path, spec, create_model("Unet", encoder, classes=classes, weights=None).eval(), epoch=0)


def peak_rss_mb(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of ``command`` run as a child process; it must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    assert proc.stdout is not None
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(command)}\n{output.decode(errors='replace')}")
    return usage.ru_maxrss / 1024, time.perf_counter() - start  # Linux: ru_maxrss in KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="64,1024,4096", help="image sides; the last two are compared")
    parser.add_argument("--tile", type=int, default=512)
    parser.add_argument("--stride", type=int, default=384)
    parser.add_argument("--classes", type=int, default=6, help="model outputs, background included")
    parser.add_argument("--encoder", default="mobilenet_v2")
    parser.add_argument("--model-size", type=int, default=256, help="the checkpoint's training side")
    parser.add_argument("--batch", type=int, default=4, help="tiles per batch (predict --batch)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the predict process")
    parser.add_argument("--work", type=Path, default=None, help="working folder (default: a temporary one)")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        ckpt = work / "model.pt"
        _checkpoint(ckpt, args.encoder, args.classes, args.model_size)
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
        print(f"load average {os.getloadavg()[0]:.2f}; Unet/{args.encoder}, {args.classes} outputs, tile "
              f"{args.tile} stride {args.stride}, batch {args.batch}, {args.threads} threads, CPU")
        peaks: dict[int, float] = {}
        for side in sizes:
            folder = work / f"images_{side}"
            folder.mkdir(exist_ok=True)
            cv2.imwrite(str(folder / "image.png"), _image(side))
            command = [sys.executable, "-m", "datatools", "train", "predict", "--ckpt", str(ckpt), "--images",
                       str(folder), "--sliding-window", f"{args.tile},{args.stride}", "--batch", str(args.batch),
                       "--workers", "0", "--device", "cpu", "--no-progress", "--overwrite", "--out",
                       str(work / f"pred_{side}")]
            peaks[side], seconds = peak_rss_mb(command, env)
            print(f"{side:>5} x {side:<5} peak RSS {peaks[side]:8.1f} MB   {seconds:6.1f} s")
        if len(sizes) >= 2:
            small, large = sizes[-2], sizes[-1]
            ratio = peaks[large] / peaks[small]
            verdict = "within" if ratio <= TARGET else "ABOVE"
            print(f"{large} / {small}: {ratio:.2f}x ({verdict} the {TARGET}x target); image-dependent part "
                  f"{peaks[large] - peaks[sizes[0]]:.0f} MB vs {peaks[small] - peaks[sizes[0]]:.0f} MB over the "
                  f"{sizes[0]} px run" if len(sizes) >= 3 else f"{large} / {small}: {ratio:.2f}x")
        print(f"load average {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()

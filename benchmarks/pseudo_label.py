"""``pseudo-label --ckpt`` against ``train predict`` alone, and its peak memory for N and 4N images.

1. time: the same images, the same ensemble of two checkpoints and TTA views, ``datatools train predict`` (masks
   as PNG) against ``datatools pseudo-label --ckpt`` (the rule, RLE per component, images copied, COCO written);
   each command runs ``--repeat`` times, alternately, in a fresh process; the best wall time and the CPU time of
   that run are reported, and their ratio (target: at most 1.15);
2. memory: peak RSS of ``pseudo-label --ckpt`` over N and over 4N images (target: within 1.2x): the labels are
   decided and encoded image by image, only records stay.

The checkpoints are untrained models of the example's classes (inference costs the same as a trained one's).
Other jobs on the machine change every figure: the load average is printed.

Run from the repository root::

    .venv/bin/python benchmarks/pseudo_label.py [--images examples/medical_waste/valid] [--n 8] [--size 256]
        [--tta hflip] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT = REPO_ROOT / "examples" / "medical_waste" / "valid"

_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
subprocess.run(sys.argv[1:], check=True, stdout=subprocess.DEVNULL)
wall = time.perf_counter() - start
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(wall, r.ru_utime + r.ru_stime, r.ru_maxrss)
"""


def measure(args: list[str]) -> tuple[float, float, float]:
    """(wall s, CPU s, peak RSS MiB) of one command in a fresh process."""
    out = subprocess.run([sys.executable, "-c", _MEASURE, sys.executable, "-m", "datatools", *args],
                         check=True, capture_output=True, text=True).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]) / 1024


def checkpoints(folder: Path, images: Path, size: int) -> list[Path]:
    """Two untrained checkpoints of the classes of the folder's COCO file."""
    import torch

    from datatools.core.classes import ClassMap
    from datatools.core.coco import read_coco_json
    from datatools_train.checkpoint import ModelSpec, save_checkpoint
    from datatools_train.config import IMAGENET_MEAN, IMAGENET_STD, Mode
    from datatools_train.model import create_model

    cm = ClassMap.from_categories(read_coco_json(images / "_annotations.coco.json")["categories"])
    spec = ModelSpec("Unet", "resnet18", tuple(cm.to_json()), Mode.MULTICLASS, IMAGENET_MEAN, IMAGENET_STD, size)
    paths = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        paths.append(folder / f"m{seed}.pt")
        save_checkpoint(paths[-1], spec, create_model("Unet", "resnet18", classes=spec.num_outputs))
    return paths


def image_folder(src: Path, dst: Path, n: int) -> Path:
    """``n`` images taken in turn from ``src`` (hard links under new names)."""
    files = sorted(p for p in src.iterdir() if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    dst.mkdir(parents=True)
    for i in range(n):
        f = files[i % len(files)]
        os.link(f, dst / f"{i:04d}_{f.name}")
    return dst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--images", type=Path, default=DEFAULT, help="folder of images with _annotations.coco.json")
    ap.add_argument("--n", type=int, default=8, help="images of the time run and of the small memory run")
    ap.add_argument("--size", type=int, default=256, help="model side")
    ap.add_argument("--tta", default="hflip", help="TTA views")
    ap.add_argument("--repeat", type=int, default=2, help="runs of each command (best wall time kept)")
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ckpts = checkpoints(root, a.images, a.size)
        small = image_folder(a.images, root / "small", a.n)
        large = image_folder(a.images, root / "large", 4 * a.n)
        model = [x for c in ckpts for x in ("--ckpt", str(c))] + ["--tta", a.tta, "--workers", "0", "--batch", "4",
                                                                 "--device", "cpu", "--no-progress", "--overwrite"]
        runs: dict[str, list[tuple[float, float, float]]] = {"predict": [], "pseudo-label": []}
        for _ in range(a.repeat):
            runs["predict"].append(measure(["train", "predict", *model, "--images", str(small), "--out",
                                            str(root / "pred")]))
            runs["pseudo-label"].append(measure(["pseudo-label", *model, "--images", str(small), "--threshold", "0.5",
                                                 "--out", str(root / "pseudo")]))
        best = {k: min(v) for k, v in runs.items()}
        print(f"{a.n} images, 2 checkpoints, TTA {a.tta}, side {a.size}, CPU:")
        for k, (wall, cpu, _) in best.items():
            print(f"  {k:13s} wall {wall:7.2f} s   CPU {cpu:7.2f} s")
        ratio = best["pseudo-label"][0] / best["predict"][0]
        cpu_ratio = best["pseudo-label"][1] / best["predict"][1]
        print(f"  pseudo-label / predict: wall {ratio:.3f}x, CPU {cpu_ratio:.3f}x (target <= 1.15x)")
        shutil.rmtree(root / "pseudo")
        rss_small = measure(["pseudo-label", *model, "--images", str(small), "--threshold", "0.5", "--out",
                             str(root / "pseudo")])[2]
        rss_large = measure(["pseudo-label", *model, "--images", str(large), "--threshold", "0.5", "--out",
                             str(root / "pseudo")])[2]
        print(f"peak RSS: {a.n} images {rss_small:.0f} MiB, {4 * a.n} images {rss_large:.0f} MiB: "
              f"{rss_large / rss_small:.3f}x (target <= 1.2x)")
        print(json.dumps({"wall_ratio": round(ratio, 3), "cpu_ratio": round(cpu_ratio, 3),
                          "rss_ratio": round(rss_large / rss_small, 3)}))
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

"""Online flips with and without the lateral pair rule, on a dataset whose classes say which side they sit on.

Every object of medical_waste is relabelled by the side of the image its box centre sits on: ``left_waste`` (left
half) or ``right_waste`` (right half), one pair of classes whose names ``--lateral-pairs auto`` recognises, and
every image is scaled to the training size beforehand (scores are at that size). The trainer is then run twice
with its default online augmentation (which flips half of the samples left-right), once with the pair rule
(``--lateral-pairs auto``: a flipped sample's left_waste becomes right_waste) and once without (``--lateral-pairs
none``: half of what the model sees carries the label of the other side), side by side, one process each. Both are
scored on held-out images by ``datatools train evaluate`` (per-class IoU, and the share of object pixels given the
class of the other side), without and with flip TTA. Training keeps no validation split: ``last.pt`` is scored, so
model selection cannot differ.

Run from the repository root (CPU; minutes)::

    nice -n 5 .venv/bin/python benchmarks/lateral.py --data ../shared/data/medical_waste --out /tmp/lateral \\
        [--train-images 160] [--epochs 6] [--size 128] [--encoder resnet18] [--threads 1] [--eval-splits valid]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import cv2
import pandas as pd

from datatools.core.imageio import encode_image, read_image

CLASSES = [{"id": 1, "name": "left_waste", "supercategory": "waste"},
           {"id": 2, "name": "right_waste", "supercategory": "waste"}]


def relabel_by_side(src: Path, root: Path, dst: Path, side: int, limit: int | None) -> tuple[int, int, int]:
    """Write ``dst/annotations.json`` + ``dst/images/`` from ``src`` (a Roboflow COCO file whose images lie in
    ``root``): every object labelled by the side of the image its box centre sits on, every image (and polygon)
    scaled to ``side`` x ``side`` pixels, so that the runs decode small PNGs rather than 640 px JPEGs; the first
    ``limit`` annotated images (sorted by file name) when given. Returns (images, left objects, right objects)."""
    coco = json.loads(src.read_text(encoding="utf-8"))
    anns = [a for a in coco["annotations"] if a.get("segmentation")]
    annotated = {a["image_id"] for a in anns}
    images = sorted((img for img in coco["images"] if img["id"] in annotated), key=lambda i: i["file_name"])
    images = images[:limit] if limit else images
    by_id = {img["id"]: img for img in images}
    (dst / "images").mkdir(parents=True, exist_ok=True)
    out_images = []
    for img in images:
        pixels = cv2.resize(read_image(root / img["file_name"]), (side, side), interpolation=cv2.INTER_AREA)
        name = Path(img["file_name"]).with_suffix(".png").name
        (dst / "images" / name).write_bytes(encode_image(pixels, ".png"))
        out_images.append({"id": img["id"], "file_name": name, "width": side, "height": side})
    out, sides = [], [0, 0]
    for a in anns:
        img = by_id.get(a["image_id"])
        if img is None:
            continue
        sx, sy = side / img["width"], side / img["height"]
        x, y, w, h = a["bbox"]
        right = x + w / 2 >= img["width"] / 2
        sides[right] += 1
        polygons = [[v * (sx if k % 2 == 0 else sy) for k, v in enumerate(poly)] for poly in a["segmentation"]]
        out.append({"id": a["id"], "image_id": a["image_id"], "category_id": 2 if right else 1, "iscrowd": 0,
                    "segmentation": polygons, "bbox": [x * sx, y * sy, w * sx, h * sy], "area": a["area"] * sx * sy})
    (dst / "annotations.json").write_text(json.dumps({"images": out_images, "annotations": out,
                                                      "categories": CLASSES}), encoding="utf-8")
    return len(images), sides[0], sides[1]


def _cli(*args: str, env: dict[str, str]) -> str:
    cmd = [sys.executable, "-m", "datatools", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout + done.stderr


def _start(*args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "datatools", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _scores(folder: Path) -> dict[str, Any]:
    per_class = pd.read_csv(folder / "per_class.csv")
    iou = {str(r["class"]): float(r["iou"]) for _, r in per_class.iterrows()}
    confusion = pd.read_csv(folder / "confusion.csv", index_col=0)
    left, right = confusion.loc["left_waste"], confusion.loc["right_waste"]
    swapped = (left["right_waste"] + right["left_waste"]) / max(1, left.sum() + right.sum())
    return {"iou": iou, "other_side_share": float(swapped)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="medical_waste folder (train/, valid/, test/)")
    parser.add_argument("--out", type=Path, required=True, help="work folder (datasets, runs, evaluations)")
    parser.add_argument("--train-images", type=int, default=160, help="annotated training images used")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=3e-4, help="peak learning rate")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--threads", type=int, default=1, help="torch threads of each of the two runs")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--eval-splits", default="valid", help="held-out splits scored: valid, test or valid,test")
    args = parser.parse_args()

    args.out.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "MKL_NUM_THREADS": str(args.threads)}
    splits = {}
    for split, limit in (("train", args.train_images), *((s, None) for s in args.eval_splits.split(","))):
        folder = args.out / split
        n, left, right = relabel_by_side(args.data / split / "_annotations.coco.json", args.data / split, folder,
                                         args.size, limit)
        splits[split] = folder
        print(f"{split}: {n} images at {args.size} px, {left} left_waste and {right} right_waste objects")
    fast = ["--encoder", args.encoder, "--weights", "none", "--size", str(args.size), "--epochs", str(args.epochs),
            "--batch", str(args.batch), "--lr", str(args.lr), "--workers", "0", "--seed", str(args.seed),
            "--no-progress"]
    results: dict[str, Any] = {}
    start = time.perf_counter()
    fits = {rule: _start("train", "fit", "--data", str(splits["train"]), *fast, "--lateral-pairs", rule,
                         "--out", str(args.out / f"run_{rule}"), "--overwrite", env=env)
            for rule in ("auto", "none")}  # side by side: each a process of its own
    for rule, proc in fits.items():
        out, _ = proc.communicate()
        if proc.returncode:
            raise SystemExit(f"fit --lateral-pairs {rule} failed:\n{out}")
        minutes = (time.perf_counter() - start) / 60
        print(f"--lateral-pairs {rule}: trained in {minutes:.1f} min; "
              + "; ".join(line for line in out.splitlines() if "lateral pair" in line or "warning" in line))
        results[rule] = {"train_minutes": round(minutes, 2)}
    for rule in ("auto", "none"):
        for split in args.eval_splits.split(","):
            for tta in ("none", "hflip"):
                folder = args.out / f"eval_{rule}_{split}_{tta}"
                _cli("train", "evaluate", "--ckpt", str(args.out / f"run_{rule}" / "last.pt"), "--data",
                     str(splits[split]), "--tta", tta, "--worst", "0", "--workers", "0", "--no-progress", "--out",
                     str(folder), "--overwrite", env=env)
                results[rule][f"{split}/tta={tta}"] = _scores(folder)
    print("\nper-class IoU on held-out images (last.pt), and the share of object pixels given the other side's class")
    print(f"{'split / TTA':<18} {'rule':<6} {'left_waste':>10} {'right_waste':>11} {'mIoU(fg)':>9} {'other side':>10}")
    for key in (k for k in results["auto"] if "/" in k):
        for rule in ("auto", "none"):
            s = results[rule][key]
            lw, rw = s["iou"]["left_waste"], s["iou"]["right_waste"]
            print(f"{key:<18} {rule:<6} {lw:>10.4f} {rw:>11.4f} {(lw + rw) / 2:>9.4f} {s['other_side_share']:>10.1%}")
    (args.out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
    print(f"\nwritten to {args.out / 'results.json'}")


if __name__ == "__main__":
    main()

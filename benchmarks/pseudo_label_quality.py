"""Pseudo-label quality on the medical-waste data: is a confident pixel a correct pixel?

1. Fit a small model on ``train`` (no validation set: the best checkpoint is the lowest training loss).
2. Predict ``valid`` as if unlabelled (``train predict --save-probs``), pseudo-label it at thresholds 0 (plain
   arg-max), 0.5, 0.7, 0.9, 0.95, render what was written with the one rasteriser and compare with the real
   ``valid`` labels: per-class pixel precision over non-ignored pixels, and coverage (share not ignored).
3. ``--fit-threshold T``: fit the same model on train + pseudo(valid at T) and evaluate both models on ``test``.

Run (CPU, a long run; everything is kept under --work, finished steps are skipped)::

    nice -n 5 python benchmarks/pseudo_label_quality.py --data ../shared/data/medical_waste --work /tmp/pq
    nice -n 5 python benchmarks/pseudo_label_quality.py --data ../shared/data/medical_waste --work /tmp/pq \\
        --fit-threshold 0.9
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

from datatools.core.dataset import Dataset
from datatools.core.masks import rasterize_semantic
from datatools.pseudo import ProbabilitySource, RuleConfig, pseudo_label

THRESHOLDS = (0.0, 0.5, 0.7, 0.9, 0.95)
ARGMAX = 1e-6  # every arg-max class has p >= 1/C: this threshold keeps them all


def datatools(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "datatools", *args], check=True)


def fit(out: Path, train: Path, masks: Path, extra: Path | None, size: int, epochs: int) -> None:
    if (out / "best.pt").is_file():
        return
    args = ["train", "fit", "--masks", str(masks), "--ann", str(train / "_annotations.coco.json"), "--images",
            str(train), "--arch", "Unet", "--encoder", "resnet18", "--weights", "none", "--size", str(size),
            "--epochs", str(epochs), "--batch", "8", "--workers", "1", "--seed", "0", "--no-progress",
            "--out", str(out), "--overwrite"]
    datatools(*args, *(["--extra", str(extra)] if extra else []))


def table(work: Path, valid: Path) -> list[dict[str, float]]:
    ds = Dataset.load(valid / "_annotations.coco.json", valid)
    cm = ds.class_map()
    names = ["background", *(c.name for c in cm.classes)]
    truths = {img["file_name"]: rasterize_semantic(ds.annotations_of(img["id"]), img["height"], img["width"], cm)
              for img in ds.images}
    rows = []
    for t in THRESHOLDS:
        out = work / f"pseudo_{t}"
        if not (out / "annotations.json").is_file():
            pseudo_label(ProbabilitySource([work / "pred_valid"]), out, dataset=ds,
                         rule=RuleConfig(threshold=t or ARGMAX), overwrite=True, progress=False)
        pds = Dataset.from_dir(out)
        hit = np.zeros(len(names)), np.zeros(len(names))
        kept = total = 0
        for img in pds.images:
            got = rasterize_semantic(pds.annotations_of(img["id"]), img["height"], img["width"], pds.class_map(),
                                     ignore=img["datatools"].get("ignore", []))
            truth = truths[img["file_name"]]
            keep = (got != 255) & (truth != 255)
            kept += int((got != 255).sum())
            total += got.size
            for v in range(len(names)):
                mine = keep & (got == v)
                hit[0][v] += int((mine & (truth == v)).sum())
                hit[1][v] += int(mine.sum())
        row = {"threshold": t, "coverage": kept / total}
        row.update({n: (hit[0][v] / hit[1][v]) if hit[1][v] else float("nan") for v, n in enumerate(names)})
        row.update({f"{n} px": int(hit[1][v]) for v, n in enumerate(names)})
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="medical_waste folder (train/ valid/ test/)")
    ap.add_argument("--work", type=Path, required=True, help="working folder (runs, predictions, pseudo sets)")
    ap.add_argument("--size", type=int, default=128, help="training side")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs")
    ap.add_argument("--fit-threshold", type=float, default=None, help="then fit train + pseudo(valid) at this")
    a = ap.parse_args()
    train, valid, test = a.data / "train", a.data / "valid", a.data / "test"
    masks = a.work / "masks_train"
    if not (masks / "classes.json").is_file():
        datatools("convert", "masks", "--ann", str(train / "_annotations.coco.json"), "--images", str(train),
                  "--out", str(masks), "--overwrite", "--no-progress")
    fit(a.work / "run_train", train, masks, None, a.size, a.epochs)
    if not (a.work / "pred_valid" / "predict.json").is_file():
        datatools("train", "predict", "--ckpt", str(a.work / "run_train" / "best.pt"), "--images", str(valid),
                  "--save-probs", "--probs-dtype", "float16", "--workers", "1", "--no-progress", "--out",
                  str(a.work / "pred_valid"), "--overwrite")
    rows = table(a.work, valid)
    names = [k for k in rows[0] if k not in ("threshold", "coverage") and not k.endswith(" px")]
    print("| threshold | coverage | " + " | ".join(f"precision {n}" for n in names) + " |")
    print("|---" * (len(names) + 2) + "|")
    for r in rows:
        label = "0 (argmax)" if r["threshold"] == 0 else f"{r['threshold']:g}"
        print(f"| {label} | {r['coverage']:.3f} | "
              + " | ".join(f"{r[n]:.3f} ({r[n + ' px']})" for n in names) + " |")
    (a.work / "table.json").write_text(json.dumps(rows, indent=1))
    if a.fit_threshold is None:
        return
    pseudo = a.work / f"pseudo_{a.fit_threshold}"
    fit(a.work / "run_train_pseudo", train, masks, pseudo, a.size, a.epochs)
    for run in ("run_train", "run_train_pseudo"):
        ev = a.work / f"eval_{run}"
        if not (ev / "per_class.csv").is_file():
            datatools("train", "evaluate", "--ckpt", str(a.work / run / "best.pt"), "--ann",
                      str(test / "_annotations.coco.json"), "--images", str(test), "--workers", "1", "--no-progress",
                      "--out", str(ev), "--overwrite")
        print(run, (ev / "per_class.csv").read_text())


if __name__ == "__main__":
    main()

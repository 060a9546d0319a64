"""Pseudo-label quality on the medical-waste data: is a confident pixel a correct pixel?

1. Fit a small model on ``train`` (no validation set: the best checkpoint is the lowest training loss), or take
   one with ``--ckpt`` (e.g. the shared 12-epoch model; give ``--masks`` to reuse converted train masks).
2. Predict ``valid`` as if unlabelled (``train predict --save-probs``), pseudo-label it at thresholds 0 (plain
   arg-max), 0.5, 0.7, 0.9, 0.95, render what was written with the one rasteriser and compare with the real
   ``valid`` labels: per-class pixel precision over non-ignored pixels (with pixel counts), and coverage (share
   not ignored). A calibration table (per class: accuracy of the arg-max pixels by bins of their probability,
   computed straight from the probabilities resized to the image) shows where precision comes from, and
   cross-checks the written labels: its cumulative counts must equal the table's.
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
from datatools.pseudo.sources.probabilities import read_full_probs

THRESHOLDS = (0.0, 0.5, 0.7, 0.9, 0.95)
ARGMAX = 1e-6  # every arg-max class has p >= 1/C: this threshold keeps them all
BINS = (0.0, 0.5, 0.7, 0.9, 0.95, 1.0 + 1e-6)  # calibration bins of the arg-max probability
CONFIDENT = 0.9  # the confusion of the pixels at least this sure


def datatools(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "datatools", *args], check=True)


def fit(out: Path, train: Path, masks: Path, extra: Path | None, size: int, epochs: int) -> None:
    """The shared model's recipe (Unet/resnet18, no weights, batch 8, seed 0), optionally with ``--extra``; a run
    whose history holds every epoch is kept (best.pt alone appears after the first epoch)."""
    history = out / "history.csv"
    if history.is_file() and len(history.read_text().splitlines()) - 1 >= epochs:
        return
    args = ["train", "fit", "--masks", str(masks), "--ann", str(train / "_annotations.coco.json"), "--images",
            str(train), "--arch", "Unet", "--encoder", "resnet18", "--weights", "none", "--size", str(size),
            "--epochs", str(epochs), "--batch", "8", "--workers", "1", "--seed", "0", "--no-progress",
            "--out", str(out), "--overwrite"]
    datatools(*args, *(["--extra", str(extra)] if extra else []))


def truths(valid: Path) -> tuple[Dataset, list[str], dict[str, np.ndarray]]:
    ds = Dataset.load(valid / "_annotations.coco.json", valid)
    cm = ds.class_map()
    names = ["background", *cm.display_names()]
    return ds, names, {img["file_name"]: rasterize_semantic(ds.annotations_of(img["id"]), img["height"],
                                                            img["width"], cm) for img in ds.images}


def table(work: Path, ds: Dataset, names: list[str], truth: dict[str, np.ndarray]) -> list[dict[str, float]]:
    """Per threshold: coverage, and per class the precision and pixel count of the written (rendered) labels."""
    rows = []
    for t in THRESHOLDS:
        out = work / f"pseudo_{t}"
        if not (out / "annotations.json").is_file():
            pseudo_label(ProbabilitySource([work / "pred_valid"]), out, dataset=ds,
                         rule=RuleConfig(threshold=t or ARGMAX), overwrite=True, progress=False)
        pds = Dataset.from_dir(out)
        hit, got_px = np.zeros(len(names)), np.zeros(len(names))
        kept = total = 0
        for img in pds.images:
            got = rasterize_semantic(pds.annotations_of(img["id"]), img["height"], img["width"], pds.class_map(),
                                     ignore=img["datatools"].get("ignore", []))
            true = truth[img["file_name"]]
            keep = (got != 255) & (true != 255)
            kept += int((got != 255).sum())
            total += got.size
            for v in range(len(names)):
                mine = keep & (got == v)
                hit[v] += int((mine & (true == v)).sum())
                got_px[v] += int(mine.sum())
        row: dict[str, float] = {"threshold": t, "coverage": kept / total,
                                 "precision": float(hit.sum() / max(got_px.sum(), 1))}
        row.update({n: (hit[v] / got_px[v]) if got_px[v] else float("nan") for v, n in enumerate(names)})
        row.update({f"{n} px": int(got_px[v]) for v, n in enumerate(names)})
        rows.append(row)
    return rows


def calibration(work: Path, ds: Dataset, names: list[str], truth: dict[str, np.ndarray]
                ) -> tuple[dict[str, list[list[int]]], np.ndarray, list[int]]:
    """Per class, per bin of the arg-max probability: ``[correct pixels, pixels]`` (straight from the probs); and
    at ``p >= CONFIDENT``: the confusion (rows predicted, columns truth) and in how many images each class is
    predicted that confidently."""
    counts = np.zeros((len(names), len(BINS) - 1, 2), dtype=np.int64)
    confusion = np.zeros((len(names), len(names)), dtype=np.int64)
    images = [0] * len(names)
    for img in ds.images:
        stem = Path(img["file_name"]).with_suffix(".npz")
        probs = read_full_probs([work / "pred_valid" / "probs" / stem], (img["height"], img["width"]))
        best = probs.argmax(axis=0)
        top = probs.max(axis=0)
        true = truth[img["file_name"]]
        valid = true != 255
        bins = np.digitize(top, np.asarray(BINS[1:-1], np.float32))  # the rule compares in float32
        for v in range(len(names)):
            sel = valid & (best == v)
            counts[v, :, 1] += np.bincount(bins[sel], minlength=len(BINS) - 1)
            counts[v, :, 0] += np.bincount(bins[sel & (true == v)], minlength=len(BINS) - 1)
            sure = sel & (top >= np.float32(CONFIDENT))
            confusion[v] += np.bincount(true[sure], minlength=256)[: len(names)]
            images[v] += int(sure.any())
    return {n: counts[v].tolist() for v, n in enumerate(names)}, confusion, images


def print_tables(rows: list[dict[str, float]], calib: dict[str, list[list[int]]], confusion: np.ndarray,
                 images: list[int], names: list[str]) -> str:
    lines = ["| threshold | coverage | precision (all) | " + " | ".join(names) + " |",
             "|---" * (len(names) + 3) + "|"]
    for r in rows:
        label = "0 (argmax)" if r["threshold"] == 0 else f"{r['threshold']:g}"
        lines.append(f"| {label} | {r['coverage']:.3f} | {r['precision']:.3f} | "
                     + " | ".join(f"{r[n]:.3f} ({r[n + ' px']})" if r[n + " px"] else "– (0)" for n in names) + " |")
    lines += ["", "calibration: accuracy (pixels) of arg-max pixels by their probability",
              "| class | " + " | ".join(f"[{lo:g}, {min(hi, 1):g}{']' if hi > 1 else ')'}" for lo, hi in
                                       zip(BINS[:-1], BINS[1:], strict=True)) + " |",
              "|---" * len(BINS) + "|"]
    for n in names:
        lines.append(f"| {n} | " + " | ".join(f"{c / p:.3f} ({p})" if p else "– (0)" for c, p in calib[n]) + " |")
    lines += ["", f"pixels at p >= {CONFIDENT}: predicted (rows) against truth (columns), and the images they lie in",
              "| predicted | images | " + " | ".join(names) + " |", "|---" * (len(names) + 2) + "|"]
    for v, n in enumerate(names):
        lines.append(f"| {n} | {images[v]} | " + " | ".join(str(int(c)) for c in confusion[v]) + " |")
    text = "\n".join(lines)
    print(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="medical_waste folder (train/ valid/ test/)")
    ap.add_argument("--work", type=Path, required=True, help="working folder (runs, predictions, pseudo sets)")
    ap.add_argument("--ckpt", type=Path, default=None, help="the model trained on train that pseudo-labels valid "
                    "(default: fit one)")
    ap.add_argument("--baseline", type=Path, default=None, help="the without-pseudo model evaluated on test "
                    "(default: --ckpt)")
    ap.add_argument("--masks", type=Path, default=None, help="converted train masks (default: convert into --work)")
    ap.add_argument("--size", type=int, default=128, help="training side")
    ap.add_argument("--epochs", type=int, default=3, help="training epochs")
    ap.add_argument("--fit-threshold", type=float, default=None, help="then fit train + pseudo(valid) at this")
    a = ap.parse_args()
    train, valid, test = a.data / "train", a.data / "valid", a.data / "test"
    a.work.mkdir(parents=True, exist_ok=True)
    masks = a.masks or a.work / "masks_train"
    if not (masks / "classes.json").is_file():
        datatools("convert", "masks", "--ann", str(train / "_annotations.coco.json"), "--images", str(train),
                  "--out", str(masks), "--overwrite", "--no-progress")
    ckpt = a.ckpt
    if ckpt is None:
        fit(a.work / "run_train", train, masks, None, a.size, a.epochs)
        ckpt = a.work / "run_train" / "best.pt"
    if not (a.work / "pred_valid" / "predict.json").is_file():
        datatools("train", "predict", "--ckpt", str(ckpt), "--images", str(valid), "--save-probs",
                  "--probs-dtype", "float16", "--workers", "1", "--no-progress", "--out", str(a.work / "pred_valid"),
                  "--overwrite")
    ds, names, truth = truths(valid)
    rows = table(a.work, ds, names, truth)
    calib, confusion, images = calibration(a.work, ds, names, truth)
    for r, t in zip(rows, THRESHOLDS, strict=True):  # the written labels are the rule on the probabilities
        for n in names:
            lo = int(np.searchsorted(BINS, t or ARGMAX, side="right")) - 1 if t else 0
            assert BINS[lo] == t or not t, "thresholds must be bin edges"
            want = sum(p for _, p in calib[n][lo:])
            assert r[f"{n} px"] == want, (t, n, r[f"{n} px"], want)
    text = print_tables(rows, calib, confusion, images, names)
    (a.work / "table.md").write_text(text + "\n")
    (a.work / "table.json").write_text(json.dumps({"rows": rows, "calibration": calib, "confusion": confusion.tolist(),
                                                        "ckpt": str(ckpt)}, indent=1))
    if a.fit_threshold is None:
        return
    pseudo = a.work / f"pseudo_{a.fit_threshold}"
    fit(a.work / "run_train_pseudo", train, masks, pseudo, a.size, a.epochs)
    for name, run_ckpt in (("without", a.baseline or ckpt), ("with_pseudo", a.work / "run_train_pseudo" / "best.pt")):
        ev = a.work / f"eval_{name}"
        if not (ev / "per_class.csv").is_file():
            datatools("train", "evaluate", "--ckpt", str(run_ckpt), "--ann", str(test / "_annotations.coco.json"),
                      "--images", str(test), "--workers", "1", "--no-progress", "--out", str(ev), "--overwrite")
        print(name, run_ckpt, (ev / "per_class.csv").read_text(), sep="\n")


if __name__ == "__main__":
    main()

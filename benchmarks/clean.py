"""Noise-injection benchmark of ``datatools clean`` on ../shared/data/medical_waste train (seeded).

Injected: 3% of images copied with a horizontal flip and a JPEG re-encode; 2% of images made very dark or washed
out; 1% of annotations duplicated with their class (double annotations) and 1% with another class (conflicting
labels); 5% of annotations given another class, 5% deleted, 3% spurious polygons added (label issues: these need
out-of-fold probabilities from a model and are not scored here).

Precision counts only findings that are new against a run on the un-injected data: the export already holds
Roboflow copies of one photo (near duplicates) and a few unusual photos, which are real findings, not errors.
Also times ``clean``'s image pass against ``eda``'s on the same images (2 workers, interleaved runs).

With ``--labels``, real out-of-fold probabilities are made for the label issues: ``datatools folds`` (k folds), a
small CPU model per fold (``train fit``: Unet resnet18, no pretrained weights, ``--size``, ``--epochs``) and
``train predict --save-probs`` on its validation fold; the AUROC of the per-annotation score (1 - label quality)
for injected (class flips, spurious polygons) against untouched annotations is printed beside two baselines,
a random score and the annotation's area (smaller = more suspect).

With ``--features CKPT``, the injected dark / washed-out images are ranked by the encoder kNN distance of
``clean --ckpt`` (AUROC and the top of the list).

Run: ``python benchmarks/clean.py [--data ../shared/data/medical_waste/train] [--seed 0] [--workers 2] [--labels
[--work /tmp/clean-labels] [--k 3] [--size 64] [--epochs 3] [--shrink 128]] [--features CKPT] [--memory]``;
``--work`` keeps the working files, and a killed ``--labels`` run started again with it resumes.
"""

from __future__ import annotations

import argparse
import copy
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from datatools.clean import run_clean
from datatools.core.coco import read_coco_json
from datatools.core.imageio import read_image
from datatools.eda import run_eda


def _flip_polygons(segm: list[list[float]], width: int) -> list[list[float]]:
    out = []
    for part in segm:
        xy = np.asarray(part, dtype=np.float64).reshape(-1, 2)
        xy[:, 0] = width - xy[:, 0]
        out.append(xy.ravel().tolist())
    return out


def inject(src_ann: Path, src_root: Path, dst: Path, seed: int) -> dict[str, Any]:
    """Write the noisy dataset into ``dst`` (annotations.json + images/) and return what was injected."""
    rng = np.random.default_rng(seed)
    coco = read_coco_json(src_ann)
    root = dst / "images"
    shutil.copytree(src_root, root, ignore=shutil.ignore_patterns("*.json"))
    images, anns = coco["images"], coco["annotations"]
    next_img = max(r["id"] for r in images) + 1
    next_ann = max(r["id"] for r in anns) + 1
    cat_ids = [c["id"] for c in coco["categories"] if any(a["category_id"] == c["id"] for a in anns)]
    by_image: dict[int, list[dict[str, Any]]] = {}
    for a in anns:
        by_image.setdefault(a["image_id"], []).append(a)
    n_img, n_ann = len(images), len(anns)
    picks = rng.permutation(n_img)
    copies_of = picks[:round(0.03 * n_img)].tolist()
    darkened = picks[len(copies_of):len(copies_of) + round(0.02 * n_img)].tolist()
    injected: dict[str, Any] = {"copies": [], "outliers": [], "double": [], "conflict": [], "flipped": [],
                                "deleted": [], "spurious": []}
    for k in copies_of:
        img = images[k]
        pixels = read_image(root / img["file_name"])[:, ::-1]
        name = f"copy_{img['id']}.jpg"
        cv2.imwrite(str(root / name), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 85])
        new = {**img, "id": next_img, "file_name": name}
        images.append(new)
        for a in by_image.get(img["id"], []):
            anns.append({**copy.deepcopy(a), "id": next_ann, "image_id": next_img,
                         "segmentation": _flip_polygons(a["segmentation"], img["width"])})
            next_ann += 1
        injected["copies"].append((next_img, img["id"]))
        next_img += 1
    for j, k in enumerate(darkened):
        img = images[k]
        pixels = read_image(root / img["file_name"]).astype(np.float32)
        pixels = pixels * 0.15 if j % 2 == 0 else pixels * 0.3 + 0.7 * 255
        cv2.imwrite(str(root / img["file_name"]), cv2.cvtColor(pixels.astype(np.uint8), cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 90])
        injected["outliers"].append(img["id"])
    order = rng.permutation(n_ann).tolist()
    take = iter(order)
    for kind, share in (("double", 0.01), ("conflict", 0.01)):
        for _ in range(max(1, round(share * n_ann))):
            a = anns[next(take)]
            other = a["category_id"] if kind == "double" else int(rng.choice([c for c in cat_ids
                                                                                if c != a["category_id"]]))
            anns.append({**copy.deepcopy(a), "id": next_ann, "category_id": other})
            injected[kind].append((next_ann, a["id"]))
            next_ann += 1
    for _ in range(round(0.05 * n_ann)):
        a = anns[next(take)]
        a["category_id"] = int(rng.choice([c for c in cat_ids if c != a["category_id"]]))
        injected["flipped"].append(a["id"])
    deleted = {anns[next(take)]["id"] for _ in range(round(0.05 * n_ann))}
    injected["deleted"] = sorted(deleted)
    injected["deleted_images"] = sorted({a["image_id"] for a in anns if a["id"] in deleted})
    coco["annotations"] = [a for a in anns if a["id"] not in deleted]
    for _ in range(round(0.03 * n_ann)):
        img = images[int(rng.integers(n_img))]
        x, y = rng.uniform(0, img["width"] - 60), rng.uniform(0, img["height"] - 60)
        s = float(rng.uniform(20, 60))
        coco["annotations"].append({"id": next_ann, "image_id": img["id"], "category_id": int(rng.choice(cat_ids)),
                                    "iscrowd": 0, "segmentation": [[x, y, x + s, y, x + s, y + s, x, y + s]],
                                    "area": s * s, "bbox": [x, y, s, s]})
        injected["spurious"].append(next_ann)
        next_ann += 1
    (dst / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
    return injected


def shrink(src: Path, dst: Path, side: int) -> None:
    """A copy of the dataset folder ``src`` with every image resized to ``side`` x ``side`` and its annotations
    scaled with it (the ids unchanged), so a small CPU model decodes, predicts and saves small arrays."""
    coco = read_coco_json(src / "annotations.json")
    (dst / "images").mkdir(parents=True)
    for img in coco["images"]:
        pixels = cv2.resize(read_image(src / "images" / img["file_name"]), (side, side), interpolation=cv2.INTER_AREA)
        cv2.imwrite(str(dst / "images" / img["file_name"]), cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR),
                    [cv2.IMWRITE_JPEG_QUALITY, 95])
    scale = {img["id"]: (side / img["width"], side / img["height"]) for img in coco["images"]}
    for img in coco["images"]:
        img["width"] = img["height"] = side
    for a in coco["annotations"]:
        sx, sy = scale[a["image_id"]]
        a["segmentation"] = [[v * (sx if k % 2 == 0 else sy) for k, v in enumerate(part)] for part in a["segmentation"]]
        x, y, w, h = a["bbox"]
        a["bbox"], a["area"] = [x * sx, y * sy, w * sx, h * sy], a["area"] * sx * sy
    (dst / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")


def _run(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "datatools", *args, "--no-progress"], check=True,
                   stdout=subprocess.DEVNULL)


def label_benchmark(noisy: Path, tmp: Path, injected: dict[str, Any], args: argparse.Namespace) -> None:
    """Out-of-fold probabilities from a small CPU model per fold, then ``clean --probs``; prints the AUROCs.

    Resumable: a step whose ``.done`` marker is in ``tmp`` is skipped, a fit interrupted after an epoch resumes.
    """
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    start = time.perf_counter()
    if args.shrink:
        if not (tmp / "small" / "annotations.json").is_file():
            shutil.rmtree(tmp / "small", ignore_errors=True)
            shrink(noisy, tmp / "small", args.shrink)
        noisy = tmp / "small"
    if not (tmp / "folds" / ".done").is_file():
        _run("folds", "--data", str(noisy), "--k", str(args.k), "--seed", str(args.seed), "--out",
             str(tmp / "folds"), "--group-by", r"regex:^(.*)_(jpg|jpeg|png)\.rf\.", "--overwrite")
        (tmp / "folds" / ".done").touch()
    oof = tmp / "oof"
    oof.mkdir(exist_ok=True)
    for fold in range(args.k):
        run, pred = tmp / f"run{fold}", tmp / f"pred{fold}"
        if not (run / ".done").is_file():
            again = ["--resume"] if (run / "last.pt").is_file() else ["--overwrite"]
            _run("train", "fit", "--data", str(noisy), "--folds", str(tmp / "folds" / "folds.parquet"), "--fold",
                 str(fold), "--arch", "Unet", "--encoder", "resnet18", "--weights", "none", "--mode", "multiclass",
                 "--size", str(args.size), "--epochs", str(args.epochs), "--batch", "8", "--lr", "1e-3",
                 "--device", "cpu", "--workers", str(args.train_workers), "--out", str(run), *again)
            (run / ".done").touch()
            print(f"  fold {fold} trained after {time.perf_counter() - start:.0f} s", flush=True)
        if not (pred / ".done").is_file():
            _run("train", "predict", "--ckpt", str(run / "best.pt"), "--ann",
                 str(tmp / "folds" / f"val_fold{fold}.json"), "--images", str(noisy / "images"), "--save-probs",
                 "--probs-dtype", "float16", "--device", "cpu", "--workers", str(args.train_workers), "--out",
                 str(pred), "--overwrite")
            for path in (pred / "probs").rglob("*.npz"):
                dst = oof / path.relative_to(pred / "probs")
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, dst)
            (pred / ".done").touch()
            print(f"  fold {fold} predicted after {time.perf_counter() - start:.0f} s", flush=True)
    model_s = time.perf_counter() - start
    shutil.rmtree(tmp / "labels", ignore_errors=True)
    result = run_clean(data=noisy, out=tmp / "labels", probs=oof, checks="labels", workers=args.workers,
                       progress=False, gallery=0)
    scores = pd.read_parquet(tmp / "labels" / "label_scores.parquet")
    per_ann = scores[scores["level"] == "annotation"].dropna(subset=["quality"])
    coco = read_coco_json(noisy / "annotations.json")
    area = {a["id"]: float(a.get("area") or 0.0) for a in coco["annotations"]}
    positive = set(injected["flipped"]) | set(injected["spurious"])
    y = np.array([int(a) in positive for a in per_ann["annotation_id"]])
    score = 1.0 - per_ann["quality"].to_numpy()
    rng = np.random.default_rng(args.seed)
    auc = roc_auc_score(y, score)
    auc_random = roc_auc_score(y, rng.random(len(y)))
    auc_area = roc_auc_score(y, -np.array([area[int(a)] for a in per_ann["annotation_id"]]))
    ranked = [f.annotation_ids[0] for f in result.findings if f.kind == "label-issue"]
    top = set(ranked[:len(positive)])
    deleted_images = {a for a in injected["deleted_images"]}
    missing_images = {f.image_id for f in result.findings if f.kind == "label-missing"}
    print(f"label issues: {args.k} folds x Unet resnet18 (no pretrained weights), {args.size} px, {args.epochs} "
          f"epochs on CPU" + (f", on the images shrunk to {args.shrink} px" if args.shrink else "")
          + f": {model_s:.0f} s for folds + training + out-of-fold prediction (this run only: a resumed run counts "
          "only its own part)")
    print(f"  per-annotation AUROC, injected (class flips + spurious, {int(y.sum())}) vs untouched "
          f"({int((~y).sum())}): clean {auc:.3f}, random {auc_random:.3f}, area {auc_area:.3f}")
    print(f"  precision in the top {len(positive)} label-issue findings: {len(top & positive) / max(len(top), 1):.3f}"
          f" ({len(ranked)} findings under the threshold); images with a deleted object that have a label-missing "
          f"finding: {len(deleted_images & missing_images)} of {len(deleted_images)}")


def feature_benchmark(noisy: Path, tmp: Path, injected: dict[str, Any], args: argparse.Namespace) -> None:
    """``clean --ckpt`` on the noisy split: how the encoder kNN distance ranks the injected dark / washed-out images."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    start = time.perf_counter()
    result = run_clean(data=noisy, out=tmp / "features", checks="outliers", ckpt=[args.features], device="cpu",
                       workers=args.workers, progress=False, gallery=0, overwrite=True)
    seconds = time.perf_counter() - start
    table = pd.read_parquet(tmp / "features" / "images.parquet")
    truth = set(injected["outliers"])
    y = table["image_id"].isin(truth).to_numpy()
    ranked = table.sort_values("knn_distance", ascending=False)
    top = ranked.head(len(truth))
    flagged = {f.image_id for f in result.findings if f.kind == "outlier-feature"}
    print(f"encoder kNN outliers ({args.features}, {seconds:.0f} s with the image pass): AUROC of the kNN distance for "
          f"the {len(truth)} dark / washed-out images against the rest {roc_auc_score(y, table['knn_distance']):.3f}; "
          f"{int(top['image_id'].isin(truth).sum())} of them in the top {len(truth)}; outlier-feature findings "
          f"{len(flagged)}, of which injected {len(flagged & truth)}")
    for row in ranked.head(12).itertuples():
        print(f"  {row.knn_distance:.3f} {'injected ' if row.image_id in truth else ''}{row.file_name}")


def memory_and_cpu(ann: Path, root: Path, tmp: Path, workers: int) -> None:
    """``datatools clean`` and ``datatools eda`` as commands on N and 4N images (the list repeated under new ids):
    peak RSS of the largest process, peak PSS of the process tree, CPU seconds of all processes and wall time."""
    sys.path.insert(0, str(Path(__file__).parent))
    from eda import repeated, run_with_rusage  # type: ignore[import-not-found]

    rows = []
    for label, coco in (("N", ann), ("4N", repeated(ann, root, 4, tmp / "x4.json"))):
        for cmd in ("eda", "clean"):
            extra = ["--gallery", "0"]
            r = run_with_rusage([sys.executable, "-m", "datatools", cmd, "--ann", str(coco), "--images", str(root),
                                 "--out", str(tmp / f"{cmd}_{label}"), "--workers", str(workers), "--no-progress",
                                 *extra], sample_pss=True)
            assert r["rc"] == 0, r["stderr"]
            rows.append((label, cmd, r["wall_s"], r["cpu_s"], r["largest_mib"], r["peak_tree_mib"]))
    print(f"{'images':6s} {'command':7s} {'wall s':>7s} {'CPU s':>7s} {'largest RSS MiB':>16s} {'tree PSS MiB':>13s}")
    for label, cmd, wall, cpu, rss, pss in rows:
        print(f"{label:6s} {cmd:7s} {wall:7.2f} {cpu:7.2f} {rss:16.0f} {pss:13.0f}")


def _pr(found: set[Any], truth: set[Any], baseline: set[Any]) -> tuple[float, float, int]:
    new = found - baseline
    hit = len(found & truth)
    return hit / max(len(truth), 1), len(new & truth) / max(len(new), 1), len(new)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).parents[1] / ".." / "shared" / "data" /
                        "medical_waste" / "train")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--labels", action="store_true", help="also score label issues with a small CPU model")
    parser.add_argument("--k", type=int, default=3, help="folds of the out-of-fold model")
    parser.add_argument("--size", type=int, default=64, help="training side of the model")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per fold")
    parser.add_argument("--shrink", type=int, default=128, help="label run: images resized to this side first "
                        "(0: full size)")
    parser.add_argument("--train-workers", type=int, default=1, help="DataLoader workers of the fold models")
    parser.add_argument("--work", type=Path, help="keep the working files here (the label run resumes from them)")
    parser.add_argument("--features", type=Path, help="a checkpoint: rank the injected outlier images by its "
                        "encoder features (clean --ckpt)")
    parser.add_argument("--no-speed", action="store_true", help="skip the timing runs")
    parser.add_argument("--memory", action="store_true", help="peak memory and CPU seconds of clean and eda as "
                        "commands on N and 4N images")
    args = parser.parse_args()
    src_ann = args.data / "_annotations.coco.json"
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = args.work or Path(tmp_dir)
        tmp.mkdir(parents=True, exist_ok=True)
        if (tmp / "injected.json").is_file():
            injected = json.loads((tmp / "injected.json").read_text(encoding="utf-8"))
        else:
            shutil.rmtree(tmp / "noisy", ignore_errors=True)
            injected = inject(src_ann, args.data, tmp / "noisy", args.seed)
            (tmp / "injected.json").write_text(json.dumps(injected), encoding="utf-8")
        for name in ("base", "clean"):
            shutil.rmtree(tmp / name, ignore_errors=True)
        base = run_clean(src_ann, args.data, out=tmp / "base", workers=args.workers, progress=False, gallery=0,
                         overwrite=True)
        noisy = run_clean(data=tmp / "noisy", out=tmp / "clean", workers=args.workers, progress=False,
                          gallery=0, overwrite=True)

        def images_of(result: Any, kinds: tuple[str, ...]) -> set[int]:
            return {f.image_id for f in result.findings if f.kind in kinds}

        dup_kinds = ("duplicate-exact", "duplicate-near")
        # a copy is found when it and its source end up in one cluster (one of them flagged, related to the other)
        clusters: dict[int, set[int]] = {}
        for f in noisy.findings:
            if f.kind in dup_kinds:
                clusters.setdefault(f.cluster, set()).update({f.image_id, int(f.related.split()[-1])})
        together = {c for c, s in injected["copies"] if any({c, s} <= m for m in clusters.values())}
        # precision over cluster members (flagged images and their keepers), so a keeper that changes because the
        # annotation noise changed annotation counts is not counted as a new finding
        base_members: set[int] = set()
        for f in base.findings:
            if f.kind in dup_kinds:
                base_members.update({f.image_id, int(f.related.split()[-1])})
        noisy_members = set().union(*clusters.values()) if clusters else set()
        new_dup = noisy_members - base_members
        copies = {c for c, _ in injected["copies"]}
        sources = {s for _, s in injected["copies"]}
        dup_precision = len(new_dup & (copies | sources)) / max(len(new_dup), 1)
        out_kinds = ("outlier-image", "near-constant-image")
        o_rec, o_prec, o_new = _pr(images_of(noisy, out_kinds), set(injected["outliers"]), images_of(base, out_kinds))

        def ann_found(kind: str) -> set[int]:
            return {a for f in noisy.findings if f.kind == kind for a in f.annotation_ids}

        double_truth = {new for new, _ in injected["double"]}
        conflict_truth = {new for new, _ in injected["conflict"]}
        d_found, c_found = ann_found("double-annotation"), ann_found("conflicting-label")
        base_double = {a for f in base.findings if f.kind == "double-annotation" for a in f.annotation_ids}
        base_conflict = {a for f in base.findings if f.kind == "conflicting-label" for a in f.annotation_ids}
        rows = [
            ("duplicates (flip + re-encode)", len(together) / len(copies), dup_precision, len(new_dup), len(copies)),
            ("outlier images (dark / washed out)", o_rec, o_prec, o_new, len(injected["outliers"])),
            ("double annotations", len(d_found & double_truth) / len(double_truth),
             len((d_found - base_double) & double_truth) / max(len(d_found - base_double), 1),
             len(d_found - base_double), len(double_truth)),
            ("conflicting labels", len(c_found & conflict_truth) / len(conflict_truth),
             len((c_found - base_conflict) & (conflict_truth | {o for _, o in injected["conflict"]}))
             / max(len(c_found - base_conflict), 1), len(c_found - base_conflict), len(conflict_truth)),
        ]
        print(f"medical_waste train, seed {args.seed}: {len(injected['copies'])} copies, "
              f"{len(injected['outliers'])} dark/washed-out, {len(injected['double'])} doubles, "
              f"{len(injected['conflict'])} conflicts, {len(injected['flipped'])} class flips, "
              f"{len(injected['deleted'])} deleted, {len(injected['spurious'])} spurious (label issues need --probs)")
        print(f"{'kind':38s} {'recall':>7s} {'precision':>9s} {'new findings':>12s} {'injected':>8s}")
        for name, rec, prec, n_new, n_truth in rows:
            print(f"{name:38s} {rec:7.3f} {prec:9.3f} {n_new:12d} {n_truth:8d}")
        if args.labels:
            label_benchmark(tmp / "noisy", tmp, injected, args)
        if args.features:
            feature_benchmark(tmp / "noisy", tmp, injected, args)
        if args.memory:
            memory_and_cpu(src_ann, args.data, tmp, args.workers)
        if args.no_speed:
            return
        # speed: clean's image pass against eda's, interleaved, on the original images
        eda_s, clean_s, eda_wall, clean_wall = [], [], [], []
        for r in range(args.repeats):
            for name in (f"eda{r}", f"c{r}"):
                shutil.rmtree(tmp / name, ignore_errors=True)
            e = run_eda(src_ann, args.data, out=tmp / f"eda{r}", workers=args.workers, progress=False, gallery=0)
            c = run_clean(src_ann, args.data, out=tmp / f"c{r}", workers=args.workers, progress=False, gallery=0)
            eda_s.append(e.timings["pass"])
            clean_s.append(c.timings["scan"])
            eda_wall.append(sum(e.timings.values()))
            clean_wall.append(sum(c.timings.values()))
        me, mc = statistics.median(eda_s), statistics.median(clean_s)
        print(f"image pass, {args.workers} workers, median of {args.repeats}: eda {me:.2f} s, clean {mc:.2f} s "
              f"(ratio {mc / me:.2f}); whole command: eda {statistics.median(eda_wall):.2f} s, clean "
              f"{statistics.median(clean_wall):.2f} s")


if __name__ == "__main__":
    main()

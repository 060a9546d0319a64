"""``datatools folds`` at scale, and its balance against scikit-learn's group splitters on real data.

1. Speed: a synthetic label matrix of 100,000 images x 80 classes (class frequencies from 30% down to 0.05%,
   images in groups of 1-6), split into 5 folds by ``split_groups`` (iterative stratification over the groups'
   summed label vectors, coverage repair, refinement), timed as the best of ``--repeat`` runs, with the process
   pinned to 2 cores. For reference: the kernel without the refinement, and the ``iterative-stratification``
   package on the same matrix without groups (it has no notion of groups). Target: under 60 s.
   With ``--end-to-end``: ``make_folds`` on a synthetic COCO file of the same size (labels, folds, 10 COCO files,
   balance table and plot).
2. Balance (needs ../shared/data): medical-waste train, grouped by the Roboflow regex; the largest deviation of a
   class's image share in a validation fold from its share in the whole split, for datatools, GroupKFold and
   StratifiedGroupKFold (label: each image's rarest class).

Run from the repository root::

    .venv/bin/python benchmarks/folds.py [--images 100000] [--classes 80] [--repeat 3] [--end-to-end]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from datatools.core.dataset import Dataset
from datatools.folds import ROBOFLOW_REGEX, FoldConfig, assign_folds, make_folds, max_share_deviation
from datatools.folds.groups import group_codes
from datatools.folds.split import iterative_stratification, split_groups

REPO_ROOT = Path(__file__).resolve().parent.parent
MEDICAL_WASTE = REPO_ROOT / "../shared/data/medical_waste/train"


def synthetic(n: int, n_classes: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(presence (n, K) bool, group code (n,)): groups of 1-6 consecutive images sharing a scene's classes."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 7, size=n)
    groups = np.repeat(np.arange(n), sizes)[:n]
    freq = np.geomspace(0.3, 0.0005, n_classes)
    scene = rng.random((groups[-1] + 1, n_classes)) < freq * 1.5  # classes of the group's scene
    presence = scene[groups] & (rng.random((n, n_classes)) < 0.67)  # each image shows part of the scene
    return presence, groups


def timed(fn, repeat: int) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def speed(n: int, n_classes: int, k: int, repeat: int) -> None:
    presence, groups = synthetic(n, n_classes)
    weights = presence.astype(np.float64)
    print(f"synthetic: {n} images x {n_classes} classes, {groups.max() + 1} groups, k={k}; "
          f"images per class {presence.sum(axis=0).min()}..{presence.sum(axis=0).max()}")
    seconds, result = timed(lambda: split_groups(weights, presence, groups, k, seed=0), repeat)
    folds = result.folds  # type: ignore[attr-defined]
    whole_groups = all(len(s) == 1 for s in _folds_per_group(groups, folds))
    held = [c for c in range(n_classes) if len(np.unique(groups[presence[:, c]])) >= k]
    covered = all(presence[folds == f][:, c].any() for f in range(k) for c in held)
    print(f"  split_groups (datatools, refined): {seconds:.2f} s   fold sizes {np.bincount(folds).tolist()}   "
          f"max class-share deviation {100 * max_share_deviation(presence, folds, k):.3f} points   "
          f"groups whole: {whole_groups}   coverage: {covered}   "
          f"{'UNDER' if seconds < 60 else 'OVER'} the 60 s target")
    seconds, result = timed(lambda: split_groups(weights, presence, groups, k, seed=0, refine=False), repeat)
    folds = result.folds  # type: ignore[attr-defined]
    print(f"  split_groups without refinement:   {seconds:.2f} s   "
          f"max class-share deviation {100 * max_share_deviation(presence, folds, k):.3f} points")
    seconds, folds = timed(lambda: iterative_stratification(presence, k, rng=0), repeat)
    print(f"  datatools kernel, no groups:       {seconds:.2f} s   "
          f"max class-share deviation {100 * max_share_deviation(presence, folds, k):.3f} points")  # type: ignore
    from iterstrat.ml_stratifiers import MultilabelStratifiedKFold

    splitter = MultilabelStratifiedKFold(n_splits=k, shuffle=True, random_state=0)
    seconds, folds = timed(lambda: splitter._make_test_folds(None, presence), repeat)
    print(f"  iterative-stratification package, no groups: {seconds:.2f} s   "
          f"max class-share deviation {100 * max_share_deviation(presence, folds, k):.3f} points")  # type: ignore


def _folds_per_group(groups: np.ndarray, folds: np.ndarray) -> list[set[int]]:
    order = np.argsort(groups, kind="stable")
    cuts = np.flatnonzero(np.diff(groups[order])) + 1
    return [set(chunk.tolist()) for chunk in np.split(folds[order], cuts)]


def end_to_end(n: int, n_classes: int, k: int) -> None:
    presence, groups = synthetic(n, n_classes)
    images = [{"id": i + 1, "file_name": f"scene{groups[i]:06d}/img{i:06d}.jpg", "width": 640, "height": 480}
              for i in range(n)]
    annotations: list[dict[str, object]] = []
    for i, c in zip(*np.nonzero(presence), strict=True):
        x = float(10 + (c % 40) * 15)
        annotations.append({"id": len(annotations) + 1, "image_id": int(i) + 1, "category_id": int(c) + 1,
                            "iscrowd": 0, "area": 100.0, "bbox": [x, 10.0, 10.0, 10.0],
                            "segmentation": [[x, 10.0, x + 10, 10.0, x + 10, 20.0, x, 20.0]]})
    coco = {"images": images, "annotations": annotations,
            "categories": [{"id": c + 1, "name": f"class{c}"} for c in range(n_classes)]}
    ds = Dataset(coco, Path("."), Path("synthetic.json"))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        assign_folds(ds, FoldConfig(k=k, seed=0, group_by=("folder",)))
        t1 = time.perf_counter()
        make_folds(ds, Path(tmp) / "folds", FoldConfig(k=k, seed=0, group_by=("folder",)))
        t2 = time.perf_counter()
    print(f"  end to end ({len(annotations)} annotations, --group-by folder): assign_folds {t1 - t0:.2f} s, "
          f"make_folds with all files {t2 - t1:.2f} s")


def rarest_class(presence: np.ndarray) -> np.ndarray:
    per_class = presence.sum(axis=0)
    return np.array([min(np.flatnonzero(r), key=lambda c: (per_class[c], c)) if r.any() else -1 for r in presence])


def balance(seeds: list[int]) -> None:
    if not MEDICAL_WASTE.is_dir():
        print(f"balance: skipped ({MEDICAL_WASTE} not found)")
        return
    from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

    ds = Dataset.load(MEDICAL_WASTE / "_annotations.coco.json", MEDICAL_WASTE, check_files=False)
    print(f"balance: medical-waste train, {len(ds.images)} images, grouped by regex {ROBOFLOW_REGEX!r}, k=5; "
          "largest |class image share in a validation fold - share in the whole split|, in points")
    rows = []
    for seed in seeds:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ours = assign_folds(ds, FoldConfig(k=5, seed=seed, group_by=("regex:" + ROBOFLOW_REGEX,)))
            presence = ours.labels.presence
            codes, _ = group_codes(ours.table["group"].tolist())
            y = rarest_class(presence)
            figures = [max_share_deviation(presence, ours.folds, 5)]
            for splitter in (GroupKFold(n_splits=5),
                             StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed)):
                folds = np.empty(len(y), dtype=np.int64)
                for f, (_, val) in enumerate(splitter.split(presence, y, codes)):
                    folds[val] = f
                figures.append(max_share_deviation(presence, folds, 5))
        rows.append(figures)
        print(f"  seed {seed:>3}: datatools {100 * figures[0]:5.2f}   GroupKFold {100 * figures[1]:5.2f}   "
              f"StratifiedGroupKFold (rarest class) {100 * figures[2]:5.2f}")
    mean = np.mean(rows, axis=0)
    print(f"  mean     : datatools {100 * mean[0]:5.2f}   GroupKFold {100 * mean[1]:5.2f}   "
          f"StratifiedGroupKFold (rarest class) {100 * mean[2]:5.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=100_000)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cores", type=int, default=2, help="pin the process to this many cores")
    parser.add_argument("--end-to-end", action="store_true", help="also time make_folds on a synthetic COCO")
    parser.add_argument("--seeds", default="0,1,2,3,42", help="seeds of the balance comparison")
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        cores = sorted(os.sched_getaffinity(0))[: args.cores]
        os.sched_setaffinity(0, cores)
        print(f"pinned to cores {cores}; load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    speed(args.images, args.classes, args.k, args.repeat)
    if args.end_to_end:
        end_to_end(args.images, args.classes, args.k)
    balance([int(s) for s in args.seeds.split(",")])
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()

"""On the real medical-waste train split (../shared/data): datatools against scikit-learn's group splitters."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from datatools.core.dataset import Dataset
from datatools.folds import ROBOFLOW_REGEX, FoldConfig, assign_folds, check_folds, make_folds, max_share_deviation
from datatools.folds.groups import group_codes

pytestmark = pytest.mark.shared_data
REGEX = "regex:" + ROBOFLOW_REGEX


def sklearn_folds(splitter: GroupKFold | StratifiedGroupKFold, y: np.ndarray, groups: np.ndarray) -> np.ndarray:
    folds = np.empty(len(groups), dtype=np.int64)
    for f, (_, val) in enumerate(splitter.split(np.zeros((len(groups), 1)), y, groups)):
        folds[val] = f
    return folds


def rarest_class(presence: np.ndarray) -> np.ndarray:
    """Each image's rarest class (fewest images in the dataset); -1 for images without annotations."""
    images_per_class = presence.sum(axis=0)
    rank = np.argsort(np.argsort(images_per_class, kind="stable"), kind="stable")
    out = np.full(len(presence), -1)
    for i, row in enumerate(presence):
        if row.any():
            held = np.flatnonzero(row)
            out[i] = held[np.argmin(rank[held])]
    return out


@pytest.fixture
def train(shared_data: Path) -> Dataset:
    root = shared_data / "medical_waste" / "train"
    return Dataset.load(root / "_annotations.coco.json", root, check_files=False)


@pytest.mark.parametrize("seed", [0, 1, 2, 42])
def test_datatools_has_the_lowest_largest_class_share_deviation(train: Dataset, seed: int) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ours = assign_folds(train, FoldConfig(k=5, seed=seed, group_by=(REGEX,)))
    presence = ours.labels.presence
    codes, _ = group_codes(ours.table["group"].tolist())
    assert len(set(codes.tolist())) == 176
    gkf = sklearn_folds(GroupKFold(n_splits=5), rarest_class(presence), codes)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns that the rarest label (no class) has few members
        sgkf = sklearn_folds(StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed),
                             rarest_class(presence), codes)
    dev = {name: max_share_deviation(presence, folds, 5)
           for name, folds in (("datatools", ours.folds), ("GroupKFold", gkf), ("StratifiedGroupKFold", sgkf))}
    print(f"seed {seed}: " + ", ".join(f"{k} {100 * v:.2f} points" for k, v in dev.items()))
    assert dev["datatools"] < dev["GroupKFold"]
    assert dev["datatools"] < dev["StratifiedGroupKFold"]
    for folds in (ours.folds, gkf, sgkf):  # all three keep groups whole
        assert all(len(set(folds[codes == g].tolist())) == 1 for g in set(codes.tolist()))


def test_regex_folds_leak_near_duplicates_that_duplicates_grouping_removes(shared_data: Path, tmp_path: Path) -> None:
    root = shared_data / "medical_waste" / "train"
    ds = Dataset.load(root / "_annotations.coco.json", root, check_files=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_folds(ds, tmp_path / "regex", FoldConfig(k=5, seed=42, group_by=(REGEX,)), workers=2)
        make_folds(ds, tmp_path / "both", FoldConfig(k=5, seed=42, group_by=(REGEX, "duplicates")), workers=2)
    leaky = check_folds(tmp_path / "regex" / "folds.parquet", images=root, workers=2)
    # frames of one video scene carry different Roboflow stems: the regex alone cannot group them
    assert not leaky.ok and {leak.kind for leak in leaky.leaks} <= {"near-duplicate", "exact-duplicate"}
    assert leaky.counts["near-duplicate"] > 100
    clean = check_folds(tmp_path / "both" / "folds.parquet", images=root, workers=2)
    assert clean.ok and not clean.coverage

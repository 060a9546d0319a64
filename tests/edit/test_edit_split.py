"""``datatools edit split``: the folds machinery cut by ratio (no group in two splits, class shares within the
folds tests' tolerance, the very folds `assign_folds` makes), or a fold of a folds table checked like every reader."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from edit_checks import check_annotation_kept, check_dataset, check_image_kept, invoke, load

from datatools.core.dataset import Dataset
from datatools.edit.split import parse_ratios, split_by_ratio
from datatools.folds import FoldConfig, assign_folds
from datatools.folds.groups import connected_components

ROBOFLOW = r"^(.*)_(jpg|jpeg|png)\.rf\."
TOLERANCE = 0.10  # the folds tests' bar for image shares (tests/folds/test_folds_provenance.py)


def _presence(coco: dict) -> tuple[list, np.ndarray]:
    ids = [img["id"] for img in coco["images"]]
    cats = [c["id"] for c in coco["categories"]]
    p = np.zeros((len(ids), len(cats)), dtype=bool)
    row, col = {i: k for k, i in enumerate(ids)}, {c: k for k, c in enumerate(cats)}
    for a in coco["annotations"]:
        p[row[a["image_id"]], col[a["category_id"]]] = True
    return ids, p


def _reference_groups(coco: dict, regex: str | None) -> list[int]:
    """Connected components of (same Roboflow picture) and (derived image, its source), on their own."""
    images = coco["images"]
    pos = {img["id"]: k for k, img in enumerate(images)}
    pairs = [(k, pos[s]) for k, img in enumerate(images) for s in (img.get("datatools") or {}).get("sources", [])]
    if regex:
        first: dict[str, int] = {}
        for k, img in enumerate(images):
            key = re.match(regex, img["file_name"]).group(1)  # type: ignore[union-attr]
            pairs.append((first.setdefault(key, k), k))
    return connected_components(len(images), pairs)


def _split_of(out: Path, names: tuple[str, ...]) -> dict:
    return {img["id"]: name for name in names for img in check_dataset(out / name)["images"]}


def test_ratio_split_is_the_folds_assignment_cut_into_parts(base45: Path, tmp_path: Path) -> None:
    src = load(base45)
    out = tmp_path / "s"
    result = invoke("edit", "split", "--data", base45, "--ratios", "0.6,0.2,0.2", "--seed", "3", "--out", out)
    names = ("train", "valid", "test")
    split_of = _split_of(out, names)
    assert sorted(split_of) == sorted(img["id"] for img in src["images"])  # each image in exactly one split
    assert [sum(v == n for v in split_of.values()) for n in names] == [27, 9, 9]
    groups = _reference_groups(src, None)
    for g in set(groups):
        assert len({split_of[img["id"]] for img, h in zip(src["images"], groups, strict=True) if h == g}) == 1
    ids, presence = _presence(src)
    split = np.array([names.index(split_of[i]) for i in ids])
    used = presence.any(axis=0)
    dev = max(float(np.abs(presence[split == s][:, used].mean(axis=0) - presence[:, used].mean(axis=0)).max())
              for s in range(3))
    assert dev < TOLERANCE
    assert f"largest class-share deviation {100 * dev:.1f} points" in result.stdout
    # the same machinery: folds 0-2 of a k=5 assignment are train, 3 valid, 4 test
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        folds = assign_folds(Dataset.open(data=base45, check_files=False), FoldConfig(k=5, seed=3)).folds
    assert split.tolist() == np.searchsorted([3, 4, 5], folds, side="right").tolist()
    # records and pixels travel unchanged
    src_img = {i["id"]: i for i in src["images"]}
    valid = load(out / "valid")
    for img in valid["images"]:
        check_image_kept(src_img[img["id"]], img)
    src_ann = {a["id"]: a for a in src["annotations"]}
    for a in valid["annotations"]:
        check_annotation_kept(src_ann[a["id"]], src_img[a["image_id"]], a, src_img[a["image_id"]])
    assert valid["x_custom"] == src["x_custom"] and valid["categories"] == src["categories"]
    table = pd.read_parquet(out / "splits.parquet")
    assert table["image_id"].tolist() == ids and table.groupby("group")["split"].nunique().max() == 1


def test_groups_never_cross_splits(base45: Path, tmp_path: Path) -> None:
    src = load(base45)
    out = tmp_path / "s"
    invoke("edit", "split", "--data", base45, "--ratios", "0.5,0.5", "--group-by", "regex:" + ROBOFLOW,
           "--names", "a,b", "--out", out)
    split_of = _split_of(out, ("a", "b"))
    groups = _reference_groups(src, ROBOFLOW)
    assert len(set(groups)) < len(groups)  # the regex and provenance join images
    for g in set(groups):
        assert len({split_of[img["id"]] for img, h in zip(src["images"], groups, strict=True) if h == g}) == 1


def test_split_by_a_fold_of_a_folds_table(base45: Path, base: Path, tmp_path: Path) -> None:
    with warnings.catch_warnings():  # the table `datatools folds --k 3` writes (without its plots, for speed)
        warnings.simplefilter("ignore")
        table = assign_folds(Dataset.open(data=base45, check_files=False), FoldConfig(k=3, seed=1)).table
    (tmp_path / "folds").mkdir()
    table.to_parquet(tmp_path / "folds" / "folds.parquet", index=False)
    out = tmp_path / "s"
    invoke("edit", "split", "--data", base45, "--folds", tmp_path / "folds" / "folds.parquet", "--fold", "1",
           "--names", "train,val", "--out", out)
    split_of = _split_of(out, ("train", "val"))
    assert {i for i, s in split_of.items() if s == "val"} == set(table.loc[table["fold"] == 1, "image_id"])
    assert {i for i, s in split_of.items() if s == "train"} == set(table.loc[table["fold"] != 1, "image_id"])
    # a table made for another dataset is refused, as by every folds reader
    other = tmp_path / "other"
    result = invoke("edit", "split", "--data", base, "--folds", tmp_path / "folds" / "folds.parquet", "--fold", "1",
                    "--out", other, code=2)
    assert "covers only part of the dataset" in result.stderr and not other.exists()
    result = invoke("edit", "split", "--data", base45, "--folds", tmp_path / "folds" / "folds.parquet", "--fold", "7",
                    "--out", other, code=2)
    assert "fold 7 does not exist" in result.stderr and not other.exists()


def test_too_few_groups_for_the_ratios_is_one_line(base: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = invoke("edit", "split", "--data", base, "--ratios", "0.9,0.05,0.05", "--out", out, code=2)
    assert "need 20 equal parts" in result.stderr and not out.exists()


@pytest.mark.shared_data
def test_real_train_split_8_1_1_keeps_roboflow_groups_and_class_shares(shared_data: Path) -> None:
    """medical_waste train (512 images): 0.8/0.1/0.1 by Roboflow picture, shares within the folds tolerance."""
    root = shared_data / "medical_waste" / "train"
    ds = Dataset.load(root / "_annotations.coco.json", root, check_files=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = split_by_ratio(ds, parse_ratios("0.8,0.1,0.1"), config=FoldConfig(seed=0, group_by=(
            "regex:" + ROBOFLOW,)))
    groups = _reference_groups(ds.coco, ROBOFLOW)
    for g in set(groups):
        assert len({int(s) for s, h in zip(result.split, groups, strict=True) if h == g}) == 1
    sizes = np.bincount(result.split, minlength=3) / len(ds.images)
    assert np.abs(sizes - [0.8, 0.1, 0.1]).max() < 0.03
    _, presence = _presence(ds.coco)
    used = presence.any(axis=0)
    dev = max(float(np.abs(presence[result.split == s][:, used].mean(axis=0) - presence[:, used].mean(axis=0)).max())
              for s in range(3))
    assert dev < TOLERANCE
    assert result.summary["max_image_share_dev"] == pytest.approx(dev, abs=1e-6)
    print(f"\nmedical_waste train 0.8/0.1/0.1: images {np.bincount(result.split).tolist()}, groups "
          f"{len(set(groups))}, largest image-share deviation {100 * dev:.2f} points")

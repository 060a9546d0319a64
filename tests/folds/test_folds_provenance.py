"""Splits follow provenance: ``augment ... --merge`` then ``folds`` keeps every derived image with its sources.

Real commands (``datatools augment`` and ``datatools folds`` through the CLI) on examples/medical_waste; the
violations are counted by a reference that walks ``images[].datatools.sources`` by id on its own, and the groups
are checked against scipy's connected components.
"""

from __future__ import annotations

import json
import re
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from provenance_reference import crossing, fold_map, reference_components
from sklearn.model_selection import StratifiedGroupKFold
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.folds import ROBOFLOW_REGEX, FoldConfig, assign_folds, check_folds, image_groups, max_share_deviation
from datatools.folds.groups import group_codes

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
ANN = EXAMPLE / "_annotations.coco.json"
REGEX = "regex:" + ROBOFLOW_REGEX
runner = CliRunner()


def invoke(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--no-progress"], terminal_width=300)
    assert result.exit_code == code, (args, result.output)
    return result


def augment(op: str, out: Path, *args: str) -> dict[str, Any]:
    invoke("augment", op, *args, "--out", str(out), "--merge", "--seed", "0", "--workers", "1")
    return json.loads((out / "annotations.json").read_text())


def same_partition(a: list[Any], b: np.ndarray) -> bool:
    return len(set(zip(a, b.tolist(), strict=True))) == len(set(a)) == len(set(b.tolist()))


def stratified_group_kfold_deviation(presence: np.ndarray, groups: list[str], k: int, seed: int) -> float:
    """scikit-learn's StratifiedGroupKFold on the same groups (label: each image's rarest class), as in
    test_folds_shared_medical_waste."""
    codes, _ = group_codes(groups)
    per_class = presence.sum(axis=0)
    y = np.array([int(np.flatnonzero(row)[np.argmin(per_class[row])]) if row.any() else -1 for row in presence])
    folds = np.empty(len(groups), dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for f, (_, val) in enumerate(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(
                np.zeros((len(y), 1)), y, codes)):
            folds[val] = f
    return max_share_deviation(presence, folds, k)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("provenance")


@pytest.fixture(scope="module")
def flipped(work: Path) -> Path:
    augment("flip", work / "flip", "--ann", str(ANN), "--images", str(EXAMPLE))
    return work / "flip"


@pytest.fixture(scope="module")
def mosaics(work: Path) -> Path:
    coco = augment("mosaic", work / "mosaic", "--ann", str(ANN), "--images", str(EXAMPLE), "-n", "4")
    assert all(len(img["datatools"]["sources"]) == 4 for img in coco["images"] if "datatools" in img)
    return work / "mosaic"


@pytest.fixture(scope="module")
def chain(work: Path) -> Path:
    """A flip of every image of (the example merged with 8 copy-paste outputs), merged again."""
    augment("copy-paste", work / "cp", "--ann", str(ANN), "--images", str(EXAMPLE), "-n", "8")
    augment("flip", work / "chain", "--data", str(work / "cp"))
    return work / "chain"


def make(data: Path, out: Path, *extra: str, k: int = 5, seed: int = 0) -> Any:
    return invoke("folds", "--data", str(data), "--k", str(k), "--seed", str(seed), "--out", str(out), *extra)


@pytest.mark.parametrize("seed", [0, 1, 42])
def test_flip_merge_keeps_each_flip_with_its_source(flipped: Path, work: Path, seed: int) -> None:
    coco = json.loads((flipped / "annotations.json").read_text())
    derived = [img for img in coco["images"] if "datatools" in img]
    assert len(derived) == 45
    out = work / f"flip_folds_{seed}"
    result = make(flipped, out, seed=seed)
    fold_of = fold_map(out)
    assert crossing(coco, fold_of) == set()
    assert "provenance: 45 derived images; joined 90 groups into 45 (groups: 90 -> 45)" in result.stdout
    summary = json.loads((out / "summary.json").read_text())
    assert summary["groups"] == 45
    assert summary["provenance"] == {"followed": True, "derived_images": 45, "derived_with_sources_outside": 0,
                                     "groups_without_provenance": 90, "groups_joined": 90, "joined_into": 45,
                                     "groups": 45}
    # balance: better than scikit-learn's StratifiedGroupKFold on the same groups (the shared folds test's bar)
    ds = Dataset.open(data=flipped, check_files=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = assign_folds(ds, FoldConfig(k=5, seed=seed))
    assert a.folds.tolist() == [fold_of[img["id"]] for img in ds.images]
    ours = max_share_deviation(a.labels.presence, a.folds, 5)
    assert ours < stratified_group_kfold_deviation(a.labels.presence, a.table["group"].tolist(), 5, seed)
    assert ours < 0.10
    assert float(pd.read_csv(out / "balance.csv")["image_dev"].abs().max()) == pytest.approx(ours, abs=1e-6)


def test_flip_merge_combines_with_group_by(flipped: Path, work: Path) -> None:
    coco = json.loads((flipped / "annotations.json").read_text())
    out = work / "flip_regex"
    result = make(flipped, out, "--group-by", REGEX)
    fold_of = fold_map(out)
    assert crossing(coco, fold_of) == set()
    by_id = {img["id"]: img for img in coco["images"]}
    photo: dict[str, set[int]] = {}  # Roboflow stem of each image (of its source, for a flip) -> folds
    for img in coco["images"]:
        original = by_id[img["datatools"]["sources"][0]] if "datatools" in img else img
        photo.setdefault(original["file_name"].split(".rf.")[0], set()).add(fold_of[img["id"]])
    assert len(photo) == 16 and all(len(folds) == 1 for folds in photo.values())
    assert "in 16 groups" in result.stdout  # the 16 photos of the example: every flip joined its photo
    assert "joined 61 groups into 16 (groups: 61 -> 16)" in result.stdout  # 16 stems + 45 flips


def test_mosaic_merge_joins_all_four_sources(mosaics: Path, work: Path) -> None:
    coco = json.loads((mosaics / "annotations.json").read_text())
    ds = Dataset.open(data=mosaics, check_files=False)
    grouping = image_groups(ds)
    assert same_partition(grouping.groups, reference_components(coco))
    assert grouping.derived == 4 and grouping.n_groups < 45
    for seed in (0, 1, 42):
        out = work / f"mosaic_folds_{seed}"
        make(mosaics, out, seed=seed)
        fold_of = fold_map(out)
        assert crossing(coco, fold_of) == set()
        for img in coco["images"]:
            if "datatools" in img:
                assert {fold_of[s] for s in img["datatools"]["sources"]} == {fold_of[img["id"]]}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            a = assign_folds(ds, FoldConfig(k=5, seed=seed))
        ours = max_share_deviation(a.labels.presence, a.folds, 5)
        assert ours < stratified_group_kfold_deviation(a.labels.presence, a.table["group"].tolist(), 5, seed)
        assert ours < 0.10  # 10 points of image share (the example alone, 45 images in 5 folds: 5.56)


def test_mosaic_groups_combine_with_regex_in_one_step(mosaics: Path) -> None:
    coco = json.loads((mosaics / "annotations.json").read_text())
    ds = Dataset.open(data=mosaics, check_files=False)
    keys = [img["file_name"].split(".rf.")[0] for img in coco["images"]]
    grouping = image_groups(ds, [REGEX])
    assert same_partition(grouping.groups, reference_components(coco, keys))
    assert grouping.groups_without_provenance == 16 + 4
    assert grouping.n_groups == grouping.groups_without_provenance - grouping.joined + grouping.joined_into


def test_chain_follows_transitively(chain: Path, work: Path) -> None:
    coco = json.loads((chain / "annotations.json").read_text())
    by_id = {img["id"]: img for img in coco["images"]}
    ops = {img["id"]: img.get("datatools", {}).get("op") for img in coco["images"]}
    flips_of_pastes = [img for img in coco["images"]
                       if ops[img["id"]] == "flip" and ops[img["datatools"]["sources"][0]] == "copy-paste"]
    assert len(flips_of_pastes) == 8
    out = work / "chain_folds"
    make(chain, out)
    fold_of = fold_map(out)
    assert crossing(coco, fold_of) == set()
    for img in flips_of_pastes:  # the flip, the copy-paste output and every image pasted from or onto
        paste = by_id[img["datatools"]["sources"][0]]
        assert len(paste["datatools"]["sources"]) >= 2
        assert {fold_of[s] for s in paste["datatools"]["sources"]} == {fold_of[paste["id"]]} == \
            {fold_of[img["id"]]}


def check_lines(*args: str, code: int) -> list[str]:
    result = invoke("folds", "check", *args, code=code)
    return result.stdout.splitlines()


LEAK = re.compile(r"\[provenance: id (\d+) is a ([a-z -]+?) of id (\d+)[];]")


@pytest.fixture(scope="module")
def ignored(flipped: Path, chain: Path, work: Path) -> dict[str, tuple[Path, Any]]:
    """Folds made with --ignore-provenance on the flipped and the chained dataset, and the command's result."""
    return {data.name: (work / f"ignored_{data.name}", make(data, work / f"ignored_{data.name}",
                                                            "--ignore-provenance"))
            for data in (flipped, chain)}


@pytest.mark.parametrize("name", ["flip", "chain"])
def test_check_names_the_provenance_pairs_of_an_ignoring_split(ignored: dict[str, tuple[Path, Any]], work: Path,
                                                                 name: str) -> None:
    data = work / name
    coco = json.loads((data / "annotations.json").read_text())
    out, result = ignored[name]
    assert "warning: provenance ignored:" in result.stderr and "derived image(s)" in result.stderr
    expected = crossing(coco, fold_map(out))
    assert expected  # ignoring provenance did split derived images from their sources
    lines = check_lines("--folds", str(out / "folds.parquet"), "--ann", str(data / "annotations.json"), code=1)
    leaks = [line for line in lines if line.startswith("leak ")]
    assert all(line.startswith("leak provenance: ") for line in leaks)
    by_id = {img["id"]: img for img in coco["images"]}
    found = {}
    for line in leaks:
        m = LEAK.search(line)
        assert m is not None, line
        derived, source = int(m[1]), int(m[3])
        assert by_id[derived]["file_name"] in line and by_id[source]["file_name"] in line
        found[derived, source] = m[2]
    assert set(found) == expected and len(leaks) == len(expected)
    assert f"LEAKS: {len(expected)} pair(s) ({len(expected)} provenance)" in lines[-1]
    for (derived, source), chain in found.items():  # the ops from the derived image up to the source
        record = by_id[derived]["datatools"]
        if source in record["sources"]:
            assert chain == record["op"]
        else:
            middle = next(by_id[s] for s in record["sources"] if source in by_id[s]["datatools"]["sources"])
            assert chain == f"{record['op']} of {middle['datatools']['op']}"
    if name == "chain":
        assert "flip of copy-paste" in set(found.values())


def test_check_lists_provenance_before_near_duplicates(ignored: dict[str, tuple[Path, Any]], flipped: Path,
                                                       work: Path) -> None:
    lines = check_lines("--folds", str(ignored["flip"][0] / "folds.parquet"), "--data", str(flipped), code=1)
    kinds = [line.split(":")[0].removeprefix("leak ") for line in lines if line.startswith("leak ")]
    assert "provenance" in kinds and "near-duplicate" in kinds
    assert kinds.index("near-duplicate") > max(i for i, kind in enumerate(kinds) if kind == "provenance")
    # a flip is also a near-duplicate of its source: listed once, as provenance, with both reasons
    flip_pairs = [line for line in lines if line.startswith("leak provenance: ")]
    assert any("near-duplicate (pHash distance" in line for line in flip_pairs)
    make(flipped, work / "kept", seed=0)  # provenance kept: no provenance pair (the example's own copies remain)
    kept = check_lines("--folds", str(work / "kept" / "folds.parquet"), "--data", str(flipped), code=1)
    assert not any(line.startswith("leak provenance") for line in kept)
    assert any(line.startswith("leak near-duplicate") for line in kept)


def derived_records(sources: list[list[Any] | None]) -> Dataset:
    images = []
    for n, src in enumerate(sources, start=1):
        img: dict[str, Any] = {"id": n, "file_name": f"{n}.png", "width": 8, "height": 8}
        if src is not None:
            img["datatools"] = {"op": "mosaic", "sources": src, "params": {}, "seed": 0}
        images.append(img)
    return Dataset({"images": images, "annotations": [], "categories": [{"id": 1, "name": "x"}]}, Path("."),
                   Path("made.json"))


def test_sources_outside_the_dataset_group_the_siblings(tmp_path: Path) -> None:
    # 1, 2, 4 share source 100 (not in the dataset); 3 alone from 101; 7 made from 4 (in the dataset)
    ds = derived_records([[100], [100], [101], [100, 102], None, None, [4]])
    grouping = image_groups(ds)
    assert grouping.groups == ["1+3", "1+3", "3", "1+3", "5", "6", "1+3"]
    assert (grouping.derived, grouping.unresolved, grouping.joined, grouping.joined_into) == (5, 4, 4, 1)
    fold = {1: 0, 2: 1, 3: 1, 4: 0, 5: 0, 6: 1, 7: 1}
    pd.DataFrame({"image_id": list(fold), "file_name": [f"{i}.png" for i in fold],
                  "group": [str(i) for i in fold], "fold": list(fold.values())}).to_parquet(tmp_path / "f.parquet")
    report = check_folds(tmp_path / "f.parquet", ds)
    pairs = {(leak.a_id, leak.b_id): leak.detail for leak in report.leaks}
    assert set(pairs) == {(1, 2), (4, 2), (4, 7), (1, 7)}
    assert pairs[(4, 7)] == "provenance: id 7 is a mosaic of id 4"
    assert pairs[(1, 2)] == pairs[(1, 7)] == "provenance: both made from image id 100, which is not in the split"
    assert pairs[(4, 2)] == "provenance: both made from image id 100, which is not in the split"


def test_a_group_larger_than_a_fold_is_warned_about() -> None:
    ds = derived_records([[100], [100], [100], [100], [100], None, None, None, None, None])
    with pytest.warns(UserWarning, match=r"group '1\+4' holds 5 of 10 images, more than a fold's share \(1/3\)"
                      r".*provenance joined groups into it.*--folds folds.parquet --fold i"):
        a = assign_folds(ds, FoldConfig(k=3))
    assert len(set(a.table.loc[a.table["image_id"] <= 5, "fold"])) == 1


def test_malformed_provenance_is_refused_unless_ignored(tmp_path: Path) -> None:
    coco = json.loads(ANN.read_text())
    coco["images"][3]["datatools"] = {"op": "flip", "sources": "7"}
    ann = tmp_path / "bad.json"
    ann.write_text(json.dumps(coco))
    result = invoke("folds", "--ann", str(ann), "--k", "3", "--out", str(tmp_path / "f"), code=2)
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert str(ann) in result.stderr and "datatools.sources '7'" in result.stderr
    assert not (tmp_path / "f").exists()
    invoke("folds", "--ann", str(ann), "--k", "3", "--out", str(tmp_path / "f"), "--ignore-provenance")


def test_train_val_files_follow_provenance_in_one_id_space(flipped: Path, tmp_path: Path) -> None:
    ds = Dataset.open(data=flipped, check_files=False)
    derived = [img for img in ds.images if "datatools" in img]
    val_ids = {img["id"] for img in derived[:5]}
    train, val = ds.subset([i["id"] for i in ds.images if i["id"] not in val_ids]), ds.subset(sorted(val_ids))
    train.write_json(tmp_path / "train.json")
    val.write_json(tmp_path / "val.json")
    lines = check_lines("--train", str(tmp_path / "train.json"), "--val", str(tmp_path / "val.json"), code=1)
    leaks = [line for line in lines if line.startswith("leak ")]
    assert len(leaks) == 5 and all(line.startswith("leak provenance: train id") for line in leaks)
    # ids restarting in each file (independent exports): sources cannot be followed across, and that is said
    coco = json.loads((tmp_path / "val.json").read_text())
    for n, img in enumerate(coco["images"]):
        img["id"] = n
    (tmp_path / "val.json").write_text(json.dumps({**coco, "annotations": []}))
    result = invoke("folds", "check", "--train", str(tmp_path / "train.json"), "--val", str(tmp_path / "val.json"))
    assert "provenance across --train and --val not followed" in result.stderr

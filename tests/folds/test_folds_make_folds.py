"""``make_folds`` / ``datatools folds``: the files, every field kept, the guarantees, byte-identical reruns."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.core.errors import OutputExistsError
from datatools.core.folds_table import FOLD_COLUMNS, fold_image_ids, read_folds
from datatools.folds import ROBOFLOW_REGEX, FoldConfig, assign_folds, make_folds

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
ANN = EXAMPLE / "_annotations.coco.json"
REGEX = "regex:" + ROBOFLOW_REGEX
runner = CliRunner()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "datatools", *args], capture_output=True, text=True, timeout=180)


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def example() -> Dataset:
    return Dataset.load(ANN, EXAMPLE, check_files=False)


@pytest.fixture(scope="module")
def folds_dir(tmp_path_factory: pytest.TempPathFactory, example: Dataset) -> Path:
    out = tmp_path_factory.mktemp("f") / "folds"
    with pytest.warns(UserWarning, match="Blood bag"):
        make_folds(example, out, FoldConfig(k=5, seed=42, group_by=(REGEX,)), workers=1)
    return out


def test_files_and_table(folds_dir: Path, example: Dataset) -> None:
    names = sorted(p.name for p in folds_dir.iterdir())
    assert names == sorted(["folds.parquet", "balance.csv", "balance.png", "summary.json"]
                           + [f"{s}_fold{i}.json" for s in ("train", "val") for i in range(5)])
    table = read_folds(folds_dir / "folds.parquet")  # the shared reader accepts it: no group split, no repeats
    assert tuple(table.columns) == FOLD_COLUMNS
    assert str(table["image_id"].dtype) == "int64" and str(table["fold"].dtype) == "int64"
    assert table["image_id"].tolist() == [i["id"] for i in example.images]
    assert table["file_name"].tolist() == [i["file_name"] for i in example.images]
    assert sorted(table["fold"].unique().tolist()) == [0, 1, 2, 3, 4]
    stems = [n.split("_jpg.rf.")[0].split("_png.rf.")[0] for n in table["file_name"]]
    assert table["group"].tolist() == stems


def test_coco_files_keep_every_field_and_partition(folds_dir: Path, example: Dataset) -> None:
    table = read_folds(folds_dir / "folds.parquet")
    source = json.loads(ANN.read_text())
    ann_by_image: dict[int, list[dict]] = {}
    for a in source["annotations"]:
        ann_by_image.setdefault(a["image_id"], []).append(a)
    seen_val: list[int] = []
    for f in range(5):
        train_ids, val_ids = fold_image_ids(table, f)
        for name, ids in ((f"train_fold{f}.json", train_ids), (f"val_fold{f}.json", val_ids)):
            coco = json.loads((folds_dir / name).read_text())
            assert {k: v for k, v in coco.items() if k not in ("images", "annotations")} == \
                {k: v for k, v in source.items() if k not in ("images", "annotations")}
            assert coco["images"] == [i for i in source["images"] if i["id"] in ids]  # whole records, file order
            assert coco["annotations"] == [a for a in source["annotations"] if a["image_id"] in ids]
        assert not train_ids & val_ids and train_ids | val_ids == {i["id"] for i in source["images"]}
        seen_val += sorted(val_ids)
    assert sorted(seen_val) == sorted(i["id"] for i in source["images"])  # each image validates exactly once


def test_balance_csv_against_a_loop(folds_dir: Path, example: Dataset) -> None:
    table = read_folds(folds_dir / "folds.parquet")
    balance = pd.read_csv(folds_dir / "balance.csv")
    fold_of = dict(zip(table["image_id"], table["fold"], strict=True))
    for row in balance.itertuples():
        val = [i for i in example.images if fold_of[i["id"]] == row.fold]
        holding = [i for i in val if any(a["category_id"] == row.category_id for a in example.annotations_of(i["id"]))]
        all_holding = [i for i in example.images
                       if any(a["category_id"] == row.category_id for a in example.annotations_of(i["id"]))]
        assert row.val_images == len(val) and row.images == len(holding)
        assert row.image_share == pytest.approx(len(holding) / len(val), abs=1e-6)
        assert row.image_dev == pytest.approx(len(holding) / len(val) - len(all_holding) / len(example.images),
                                              abs=2e-6)
        inst = [a for i in val for a in example.annotations_of(i["id"])]
        mine = [a for a in inst if a["category_id"] == row.category_id]
        assert row.instances == len(mine)
        assert row.instance_share == pytest.approx(len(mine) / len(inst), abs=1e-6)
        area = sum(a["area"] for a in mine)
        assert row.pixels == pytest.approx(area, abs=1e-3)
        assert row.pixel_share == pytest.approx(area / sum(a["area"] for a in inst), abs=1e-6)


def test_coverage_guarantee_and_warning(example: Dataset) -> None:
    with pytest.warns(UserWarning) as caught:
        a = assign_folds(example, FoldConfig(k=5, seed=3, group_by=(REGEX,)))
    table = a.table
    for c in example.categories:
        holders = {i["id"] for i in example.images if any(x["category_id"] == c["id"]
                                                          for x in example.annotations_of(i["id"]))}
        groups = set(table.loc[table["image_id"].isin(holders), "group"])
        in_folds = set(table.loc[table["image_id"].isin(holders), "fold"])
        if len(groups) >= 5:
            assert in_folds == {0, 1, 2, 3, 4}, c["name"]
        elif groups:
            assert any(repr(c["name"]) in str(w.message) for w in caught), c["name"]
    assert a.warnings == tuple(str(w.message) for w in caught)


def test_same_seed_same_bytes_other_seed_other_folds(tmp_path: Path) -> None:
    args = ["folds", "--ann", str(ANN), "--images", str(EXAMPLE), "--k", "4", "--group-by", REGEX,
            "--stratify", "pixels", "--workers", "2", "--no-progress"]
    outs = []
    for name, seed in (("a", "7"), ("b", "7"), ("c", "8")):
        r = run(*args, "--seed", seed, "--out", str(tmp_path / name))
        assert r.returncode == 0, r.stderr
        outs.append(digests(tmp_path / name))
    assert outs[0] == outs[1]
    assert len(outs[0]) == 4 * 2 + 4
    assert outs[0]["folds.parquet"] != outs[2]["folds.parquet"]
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary["pixel_source"] == "masks" and summary["stratify"] == "pixels"


def test_cli_default_action_and_errors(tmp_path: Path) -> None:
    r = run("folds", "--ann", str(ANN), "--k", "5", "--seed", "42", "--out", str(tmp_path / "f"),
            "--group-by", REGEX)
    assert r.returncode == 0, r.stderr
    assert "wrote 5 folds of 45 images in 16 groups" in r.stdout
    assert "warning: class 'Blood bag' is in only 4 groups" in r.stderr
    base = ["folds", "--ann", str(ANN), "--no-progress"]
    for extra, message in (
        (["--out", str(tmp_path / "f")], "not empty"),
        (["--out", str(tmp_path / "g"), "--group-by", "attr:patient"], "has no attribute 'patient'"),
        (["--out", str(tmp_path / "g"), "--group-by", "patient"], "unknown --group-by"),
        (["--out", str(tmp_path / "g"), "--group-by", "duplicates"], "give --images"),
        (["--out", str(tmp_path / "g"), "--k", "20", "--group-by", REGEX], "16 group(s) cannot make 20 folds"),
        (["--k", "3"], "--out is required"),
    ):
        result = runner.invoke(app, base + extra, terminal_width=200)
        assert result.exit_code == 2, (extra, result.output)
        assert message in " ".join(result.stderr.split()), (extra, result.stderr)
        assert not (tmp_path / "g").exists()  # nothing written


def test_overwrite_is_refused_in_the_api(tmp_path: Path, example: Dataset) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError):
        make_folds(example, tmp_path / "x", FoldConfig(k=3))
    assert (tmp_path / "x" / "keep.txt").read_text() == "mine"


@pytest.mark.parametrize("command", [["folds"], ["folds", "check"]], ids=" ".join)
def test_help_has_an_example(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example" in result.output and "datatools " + " ".join(command) + " --" in result.output


def test_stratify_instances_balances_instances(example: Dataset) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_presence = assign_folds(example, FoldConfig(k=3, seed=1, stratify="presence"))
        by_instances = assign_folds(example, FoldConfig(k=3, seed=1, stratify="instances"))
    inst = by_presence.labels.instances

    def worst(folds: np.ndarray) -> float:
        share = inst.sum(axis=0) / inst.sum()
        return max(float(np.abs(inst[folds == f].sum(axis=0) / max(inst[folds == f].sum(), 1) - share).max())
                   for f in range(3))

    assert worst(by_instances.folds) < worst(by_presence.folds)


@pytest.mark.parametrize("categories", [[], [{"id": 1, "name": "a"}]], ids=["no-categories", "no-annotations"])
def test_images_without_labels_are_spread_evenly(tmp_path: Path, categories: list[dict]) -> None:
    coco = {"images": [{"id": i, "file_name": f"{i}.jpg", "width": 4, "height": 4} for i in range(10)],
            "annotations": [], "categories": categories}
    result = make_folds(Dataset(coco, tmp_path), tmp_path / "out", FoldConfig(k=3))
    assert sorted(np.bincount(result.assignment.folds).tolist()) == [3, 3, 4]
    assert (tmp_path / "out" / "balance.png").stat().st_size > 0
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["warnings"] == []

"""``folds check``: a crafted leaky split is flagged with its pairs, a clean one passes."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import warnings
from pathlib import Path
from typing import Any

import cv2
import pandas as pd
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.folds import ROBOFLOW_REGEX, FoldConfig, check_folds, check_train_val, make_folds

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
runner = CliRunner()
PHOTO = "photo_original.jpg"
COPY = "IMG_20230101_unrelated_name.jpg"  # the same photo, flipped and re-encoded
BYTES = "exact_copy_other_name.jpg"  # the same file bytes


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One image per Roboflow group of the example (16 distinct photos), plus two renamed copies of the first."""
    root = tmp_path_factory.mktemp("crafted")
    source = json.loads((EXAMPLE / "_annotations.coco.json").read_text())
    seen: set[str] = set()
    images, annotations = [], []
    for img in source["images"]:
        stem = img["file_name"].split(".rf.")[0]
        if stem in seen:
            continue
        seen.add(stem)
        images.append(dict(img))
        annotations += [a for a in source["annotations"] if a["image_id"] == img["id"]]
        shutil.copyfile(EXAMPLE / img["file_name"], root / img["file_name"])
    first = images[0]
    shutil.copyfile(EXAMPLE / first["file_name"], root / PHOTO)
    pixels = cv2.imread(str(EXAMPLE / first["file_name"]))
    cv2.imwrite(str(root / COPY), pixels[:, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 70])
    shutil.copyfile(EXAMPLE / first["file_name"], root / BYTES)
    first["file_name"] = PHOTO
    next_id = max(i["id"] for i in images) + 1
    for n, name in enumerate((COPY, BYTES)):
        images.append({**first, "id": next_id + n, "file_name": name})
    coco = {**source, "images": images, "annotations": annotations}
    (root / "annotations.json").write_text(json.dumps(coco))
    return root, coco


def write_table(path: Path, coco: dict[str, Any], fold_of: dict[str, int]) -> Path:
    rows = [{"image_id": i["id"], "file_name": i["file_name"], "group": i["file_name"],
             "fold": fold_of.get(i["file_name"], n % 3)} for n, i in enumerate(coco["images"])]
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


def test_leaky_table_is_flagged_with_the_pairs(crafted: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, coco = crafted
    table = write_table(tmp_path / "folds.parquet", coco, {PHOTO: 0, COPY: 1, BYTES: 2})
    result = runner.invoke(app, ["folds", "check", "--folds", str(table), "--images", str(root), "--ann",
                                 str(root / "annotations.json"), "--no-progress"], terminal_width=300)
    assert result.exit_code == 1, result.output
    leaks = [line for line in result.stdout.splitlines() if line.startswith("leak ")]
    assert len(leaks) == 3  # photo-copy, photo-bytes, copy-bytes
    photo_copy = next(line for line in leaks if PHOTO in line and COPY in line)
    assert photo_copy.startswith("leak near-duplicate: fold 0") and "fold 1" in photo_copy
    photo_bytes = next(line for line in leaks if PHOTO in line and BYTES in line)
    assert photo_bytes.startswith("leak exact-duplicate:") and "near-duplicate (pHash distance 0)" in photo_bytes
    assert any(COPY in line and BYTES in line and "near-duplicate" in line for line in leaks)
    assert "LEAKS: 3 pair(s)" in result.stdout


def test_clean_split_passes(crafted: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, coco = crafted
    table = write_table(tmp_path / "folds.parquet", coco, {PHOTO: 0, COPY: 0, BYTES: 0})
    result = runner.invoke(app, ["folds", "check", "--folds", str(table), "--images", str(root), "--ann",
                                 str(root / "annotations.json"), "--no-progress"], terminal_width=300)
    assert result.exit_code == 0, result.output
    assert "no leakage found" in result.stdout and "leak " not in result.stdout


def test_folds_made_with_duplicates_pass_and_without_may_leak(crafted: tuple[Path, dict[str, Any]],
                                                              tmp_path: Path) -> None:
    root, coco = crafted
    ds = Dataset.load(root / "annotations.json", root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        make_folds(ds, tmp_path / "dup", FoldConfig(k=3, seed=0, group_by=("duplicates",)), workers=1)
    report = check_folds(tmp_path / "dup" / "folds.parquet", images=root, workers=1)  # classes from val_fold*.json
    assert report.ok and report.images == len(coco["images"]) and report.parts == 3
    assert not report.notes  # everything was checked
    # by file name alone the three copies are three groups; some seeds split them and the audit sees it
    leaky = []
    for seed in range(6):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            make_folds(ds, tmp_path / f"s{seed}", FoldConfig(k=3, seed=seed), workers=1)
        report = check_folds(tmp_path / f"s{seed}" / "folds.parquet", images=root, workers=1)
        folds = pd.read_parquet(tmp_path / f"s{seed}" / "folds.parquet").set_index("file_name")["fold"]
        split = len({folds[PHOTO], folds[COPY], folds[BYTES]}) > 1
        assert report.ok == (not split)
        leaky.append(split)
    assert any(leaky)


def test_group_split_and_same_file(crafted: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, coco = crafted
    rows = [{"image_id": i["id"], "file_name": i["file_name"], "group": "g" + str(n // 2), "fold": n % 3}
            for n, i in enumerate(coco["images"])]
    rows[1]["file_name"] = rows[0]["file_name"]  # one file listed under two ids, in two folds
    pd.DataFrame(rows).to_parquet(tmp_path / "t.parquet", index=False)
    report = check_folds(tmp_path / "t.parquet")  # no images, no annotations: group and name checks only
    kinds = {leak.kind for leak in report.leaks}
    assert kinds == {"same-file", "group"}
    assert report.leaks[0].kind == "same-file" and "group 'g0'" in report.leaks[0].detail
    assert sum(1 for leak in report.leaks if leak.kind == "group") == len(rows) // 2 - 1
    assert any("give --images" in n for n in report.notes) and any("coverage" in n for n in report.notes)


def test_train_val_files(crafted: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    root, coco = crafted
    names = [i["file_name"] for i in coco["images"]]
    train_names = set(names[:8]) | {PHOTO}
    val_leaky = set(names[8:-2]) | {COPY}
    for name, keep in (("train.json", train_names), ("val.json", val_leaky), ("val_clean.json", val_leaky - {COPY})):
        ids = {i["id"] for i in coco["images"] if i["file_name"] in keep}
        Dataset(coco, root).subset(ids).write_json(tmp_path / name)
    train = Dataset.load(tmp_path / "train.json", root, check_files=False)
    report = check_train_val(train, Dataset.load(tmp_path / "val.json", root, check_files=False), workers=1)
    assert [(leak.kind, leak.a_side, leak.a_file, leak.b_side, leak.b_file) for leak in report.leaks] == \
        [("near-duplicate", "train", PHOTO, "val", COPY)]
    clean = check_train_val(train, Dataset.load(tmp_path / "val_clean.json", root, check_files=False), workers=1)
    assert clean.ok
    result = runner.invoke(app, ["folds", "check", "--train", str(tmp_path / "train.json"), "--val",
                                 str(tmp_path / "val.json"), "--images", str(root), "--no-progress"])
    assert result.exit_code == 1 and "train id" in result.stdout and COPY in result.stdout


def test_roboflow_train_vs_valid_by_regex(tmp_path: Path) -> None:
    """The example's train and valid files, checked by the Roboflow stem: copies of a photo on both sides leak."""
    train = Dataset.load(EXAMPLE / "_annotations.coco.json", EXAMPLE, check_files=False)
    coco = json.loads((EXAMPLE / "_annotations.coco.json").read_text())
    moved = [i for i in coco["images"] if i["file_name"].startswith("img3_")][:1]
    val = Dataset({**coco, "images": moved, "annotations": []}, EXAMPLE)
    train = train.subset({i["id"] for i in coco["images"]} - {moved[0]["id"]})
    report = check_train_val(train, val, images=False, group_by=["regex:" + ROBOFLOW_REGEX])
    assert len(report.leaks) == 2 and {leak.kind for leak in report.leaks} == {"group"}
    assert all("'img3'" in leak.detail for leak in report.leaks)
    with pytest.raises(ValueError, match="near-duplicate check"):
        check_train_val(train, val, group_by=["duplicates"])


def test_bad_input_exits_2(tmp_path: Path) -> None:
    r = subprocess.run([sys.executable, "-m", "datatools", "folds", "check", "--folds", str(tmp_path / "no.parquet")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "folds file not found" in r.stderr
    result = runner.invoke(app, ["folds", "check"])
    assert result.exit_code == 2 and "give either --folds" in result.stderr

"""Groupings: folder, attr, meta, regex, duplicates, and their union."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest

from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.folds.groups import ROBOFLOW_REGEX, GroupKind, GroupSpec, connected_components, image_groups

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"


def records(names: list[str], **extra: list[Any]) -> Dataset:
    images = [{"id": i + 1, "file_name": n, "width": 8, "height": 8} for i, n in enumerate(names)]
    for key, values in extra.items():
        for img, v in zip(images, values, strict=True):
            if v is not None:
                img[key] = v
    coco = {"images": images, "annotations": [], "categories": [{"id": 1, "name": "x"}]}
    return Dataset(coco, Path("."), Path("test.json"))


@pytest.mark.parametrize(("text", "kind", "name", "file"), [
    ("folder", GroupKind.FOLDER, "", ""),
    ("attr:patient", GroupKind.ATTR, "patient", ""),
    ("meta:C:/data/meta.csv:ID", GroupKind.META, "ID", "C:/data/meta.csv"),
    ("regex:^(.*)_jpg", GroupKind.REGEX, "^(.*)_jpg", ""),
    ("duplicates", GroupKind.DUPLICATES, "", ""),
])
def test_parse(text: str, kind: GroupKind, name: str, file: str) -> None:
    spec = GroupSpec.parse(text)
    assert (spec.kind, spec.name, spec.file) == (kind, name, file)
    assert str(spec) == text


@pytest.mark.parametrize(("text", "message"), [
    ("patient", "unknown --group-by"), ("attr", "give a name"), ("folder:x", "takes no argument"),
    ("meta:onlyfile", "meta:FILE:COLUMN"), ("regex:(unclosed", "bad pattern"),
])
def test_parse_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        GroupSpec.parse(text)


def test_no_grouping_is_one_image_per_group() -> None:
    assert image_groups(records(["a.png", "b.png"])).groups == ["1", "2"]


def test_folder() -> None:
    ds = records(["ID001/L.png", "ID001/R.png", "ID002/L.png", "top.png"])
    assert image_groups(ds, ["folder"]).groups == ["ID001", "ID001", "ID002", "."]


def test_attr_top_level_or_attributes() -> None:
    ds = records(["a", "b", "c"], patient=["p1", None, "p2"], attributes=[None, {"patient": "p1"}, {}])
    assert image_groups(ds, ["attr:patient"]).groups == ["p1", "p1", "p2"]
    ds = records(["a", "b"], patient=["p1", None])
    with pytest.raises(InvalidDatasetError, match=r"image id 2 \(b\) has no attribute 'patient'"):
        image_groups(ds, ["attr:patient"])


def test_meta_by_file_name_and_by_id(tmp_path: Path) -> None:
    ds = records(["img/a.png", "img/b.png", "img/c.png"])
    pd.DataFrame({"file_name": ["a.png", "b.png", "c.png"], "person": ["x", "y", "x"]}).to_csv(
        tmp_path / "m.csv", index=False)
    assert image_groups(ds, [f"meta:{tmp_path / 'm.csv'}:person"]).groups == ["x", "y", "x"]  # bare names match
    pd.DataFrame({"image_id": [3, 2, 1], "site": [7, 7, 9]}).to_parquet(tmp_path / "m.parquet")
    assert image_groups(ds, [f"meta:{tmp_path / 'm.parquet'}:site"]).groups == ["9", "7", "7"]
    pd.DataFrame({"image_id": [1, 2], "site": [7, 7]}).to_csv(tmp_path / "short.csv", sep=";", index=False)
    with pytest.raises(InvalidDatasetError, match=r"image id 3 \(img/c.png\) has no row"):
        image_groups(ds, [f"meta:{tmp_path / 'short.csv'}:site"])
    with pytest.raises(InvalidDatasetError, match="no column 'nope'"):
        image_groups(ds, [f"meta:{tmp_path / 'short.csv'}:nope"])
    with pytest.raises(UnreadableFileError, match="meta table not found"):
        image_groups(ds, [f"meta:{tmp_path / 'missing.csv'}:site"])


def test_regex_roboflow_on_the_example() -> None:
    coco = json.loads((EXAMPLE / "_annotations.coco.json").read_text())
    ds = Dataset(coco, EXAMPLE)
    grouping = image_groups(ds, ["regex:" + ROBOFLOW_REGEX])
    groups, notes = grouping.groups, grouping.notes
    expected = [img["file_name"].split(".rf.")[0].rsplit("_", 1)[0] for img in coco["images"]]  # independent
    assert groups == expected and notes == []
    assert len(set(groups)) == 16


def test_regex_named_group_and_unmatched() -> None:
    ds = records(["cam1_0001.png", "cam1_0002.png", "cam2_0001.png", "other.png"])
    grouping = image_groups(ds, [r"regex:^(?P<prefix>x)?(?P<group>cam\d)_"])
    groups, notes = grouping.groups, grouping.notes
    assert groups == ["cam1", "cam1", "cam2", "other.png"]
    assert len(notes) == 1 and "1 file name(s) do not match" in notes[0]


def test_connected_components() -> None:
    assert connected_components(6, [(4, 5), (1, 3), (3, 5)]) == [0, 1, 2, 1, 1, 1]


def test_duplicates_and_union(tmp_path: Path) -> None:
    names = sorted(p.name for p in EXAMPLE.glob("*.jpg"))
    photo = next(n for n in names if n.startswith("img3_"))
    other = next(n for n in names if n.startswith("img5_"))
    shutil.copyfile(EXAMPLE / photo, tmp_path / "a.jpg")
    shutil.copyfile(EXAMPLE / other, tmp_path / "b.jpg")
    pixels = cv2.imread(str(EXAMPLE / photo))
    cv2.imwrite(str(tmp_path / "a_smaller_flipped.jpg"), cv2.resize(pixels, (320, 320))[:, ::-1],
                [cv2.IMWRITE_JPEG_QUALITY, 70])
    shutil.copyfile(EXAMPLE / photo, tmp_path / "a_bytes.jpg")
    cv2.imwrite(str(tmp_path / "noise.png"), np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8))
    files = ["a.jpg", "b.jpg", "a_smaller_flipped.jpg", "a_bytes.jpg", "noise.png"]
    ds = Dataset(records(files).coco, tmp_path)
    groups = image_groups(ds, ["duplicates"], workers=1).groups
    assert groups == ["a.jpg", "b.jpg", "a.jpg", "a.jpg", "noise.png"]
    # union with a grouping that ties b to the noise image: two groups remain
    ds.images[1]["site"], ds.images[4]["site"] = "s", "s"
    for i in (0, 2, 3):
        ds.images[i]["site"] = f"own{i}"
    groups = image_groups(ds, ["attr:site", "duplicates"], workers=1).groups
    assert groups[0] == groups[2] == groups[3] and groups[1] == groups[4] and groups[0] != groups[1]
    assert groups[1] == "s" and groups[0].startswith("own0+")

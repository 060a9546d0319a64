"""The written datasets: no leakage from a validation fold, byte-identical reruns, merge, provenance, formats,
overlapping classes, and the command line."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

from datatools.augment import (
    OPS,
    AlbuConfig,
    CopyPasteConfig,
    FlipConfig,
    MosaicConfig,
    RicapConfig,
    RotateConfig,
    run_augment,
)
from datatools.augment.sampling import SourceIndex, plan_rare_pastes, resolve_classes
from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.masks import annotation_to_rle, rle_to_mask
from datatools.core.rarity import Rarity, rare_classes
from datatools.validation import validate_dataset

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
ANN = EXAMPLE / "_annotations.coco.json"
runner = CliRunner()


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset.load(ANN, EXAMPLE)


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _folds(ds: Dataset, path: Path, k: int = 3) -> Path:
    """A folds table grouping the Roboflow copies of one photo (``<stem>_jpg.rf.<hash>``)."""
    groups = [re.sub(r"\.rf\.[0-9a-f]+\.\w+$", "", img["file_name"]) for img in ds.images]
    names = sorted(set(groups))
    pd.DataFrame({"image_id": [img["id"] for img in ds.images], "file_name": [img["file_name"] for img in ds.images],
                  "group": groups, "fold": [names.index(g) % k for g in groups]}).to_parquet(path)
    return path


# ---- leakage ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "config"), [("mosaic", MosaicConfig()), ("ricap", RicapConfig()),
                                            ("copy-paste", CopyPasteConfig(target_share=0.6)),
                                            ("flip", FlipConfig())])
def test_no_output_has_a_validation_source(ds: Dataset, tmp_path: Path, op: str, config: Any) -> None:
    folds = _folds(ds, tmp_path / "folds.parquet")
    table = pd.read_parquet(folds)
    val = set(table.loc[table["fold"] == 1, "image_id"])
    train = set(table.loc[table["fold"] != 1, "image_id"])
    result = run_augment(ds, tmp_path / "o", op, config, count=None if op == "copy-paste" else 40, seed=0,
                         folds=folds, fold=1, merge=True, workers=2, progress=False)
    coco = json.loads((tmp_path / "o" / "annotations.json").read_text())
    new = [img for img in coco["images"] if "datatools" in img]
    assert len(new) == result.images > 0 and result.sources == len(train)
    for img in new:
        sources = set(img["datatools"]["sources"])
        assert not sources & val, f"{img['file_name']} was made from validation images {sources & val}"
        assert sources <= train
        donors = {a["datatools"]["source_image_id"] for a in coco["annotations"] if a["image_id"] == img["id"]}
        assert donors <= sources
    merged = {img["id"] for img in coco["images"] if "datatools" not in img}
    assert merged == train, "--merge brings the fold's training images only"


def test_folds_table_of_another_dataset_is_refused(ds: Dataset, tmp_path: Path) -> None:
    folds = _folds(ds, tmp_path / "folds.parquet")
    table = pd.read_parquet(folds)
    table.loc[0, "file_name"] = "other.jpg"
    table.to_parquet(folds)
    with pytest.raises(InvalidDatasetError, match="made for another dataset"):
        run_augment(ds, tmp_path / "o", "flip", folds=folds, fold=0, progress=False)
    assert not (tmp_path / "o").exists()


# ---- determinism -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("op", "config"), [("mosaic", MosaicConfig(prefer="auto")), ("ricap", RicapConfig()),
                                            ("copy-paste", CopyPasteConfig(angle_range=(-20, 20),
                                                                           blend="gaussian")),
                                            ("rotate", RotateConfig(angle_range=(-30, 30)))])
def test_same_seed_same_files_whatever_the_workers(ds: Dataset, tmp_path: Path, op: str, config: Any) -> None:
    small = ds.subset([img["id"] for img in ds.images[:16]])
    run_augment(small, tmp_path / "a", op, config, count=10, seed=11, workers=1, progress=False)
    run_augment(small, tmp_path / "b", op, config, count=10, seed=11, workers=2, progress=False)
    run_augment(small, tmp_path / "c", op, config, count=10, seed=12, workers=2, progress=False)
    a, b, c = _hashes(tmp_path / "a"), _hashes(tmp_path / "b"), _hashes(tmp_path / "c")
    assert len(a) == 11 and a == b
    assert a["annotations.json"] != c["annotations.json"]
    images = [k for k in a if k != "annotations.json"]
    assert sum(a[k] != c.get(k) for k in images) >= 9, "a different seed gives different images"


def test_cli_rerun_is_byte_identical(tmp_path: Path) -> None:
    args = ["augment", "copy-paste", "--ann", str(ANN), "--images", str(EXAMPLE), "--rare", "auto", "-n", "6",
            "--seed", "3", "--no-progress", "--merge"]
    for name, workers in (("a", "1"), ("b", "2")):
        result = runner.invoke(app, [*args, "--out", str(tmp_path / name), "--workers", workers])
        assert result.exit_code == 0, result.output
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
    assert "Blood bag: image share" in result.output


# ---- what is written -------------------------------------------------------------------------------------------
def test_merged_dataset_is_valid_coco_with_provenance(ds: Dataset, tmp_path: Path) -> None:
    result = run_augment(ds, tmp_path / "o", "mosaic", MosaicConfig(), count=8, seed=1, merge=True, workers=2,
                         progress=False)
    assert result.merged_images == len(ds.images) and result.images == 8
    report = validate_dataset(tmp_path / "o" / "annotations.json", tmp_path / "o" / "images")
    assert not [i for i in report.issues if i.severity.name == "ERROR"]
    coco = COCO(str(tmp_path / "o" / "annotations.json"))
    assert len(coco.imgs) == len(ds.images) + 8 and len(coco.anns) == len(ds.annotations) + result.annotations
    raw = json.loads((tmp_path / "o" / "annotations.json").read_text())
    assert raw["info"] == ds.coco["info"] and raw["categories"] == ds.categories
    for img in raw["images"][len(ds.images):]:
        assert img["file_name"] == f"mosaic/mosaic_{raw['images'].index(img) - len(ds.images):06d}.jpg"
        prov = img["datatools"]
        assert prov["op"] == "mosaic" and len(prov["sources"]) == 4 and isinstance(prov["seed"], int)
        assert len(prov["params"]["tiles"]) == 4
        assert img["license"] == next(i for i in ds.images if i["id"] == prov["sources"][0])["license"]
        for ann_id in coco.getAnnIds(imgIds=img["id"]):
            ann = coco.anns[ann_id]
            assert coco.annToMask(ann).sum() == ann["area"] > 0  # pycocotools reads what we wrote
            x, y, w, h = ann["bbox"]
            assert w > 0 and h > 0 and x + w <= img["width"] and y + h <= img["height"]


def test_polygons_and_png(ds: Dataset, tmp_path: Path) -> None:
    small = ds.subset([img["id"] for img in ds.images[:6]])
    run_augment(small, tmp_path / "rle", "flip", seed=0, progress=False, workers=1)
    result = run_augment(small, tmp_path / "poly", "flip", seed=0, progress=False, workers=1,
                         segmentation="polygon", image_format="png")
    rle = json.loads((tmp_path / "rle" / "annotations.json").read_text())
    poly = json.loads((tmp_path / "poly" / "annotations.json").read_text())
    assert all(isinstance(a["segmentation"], list) for a in poly["annotations"])
    exact = 0
    for a, b in zip(rle["annotations"], poly["annotations"], strict=True):
        img = next(i for i in poly["images"] if i["id"] == b["image_id"])
        ma = rle_to_mask(annotation_to_rle(a["segmentation"], img["height"], img["width"]))
        mb = rle_to_mask(annotation_to_rle(b["segmentation"], img["height"], img["width"]))
        exact += np.array_equal(ma, mb)
    assert exact == len(poly["annotations"]) - result.inexact_polygons > 0.9 * len(poly["annotations"])
    assert all(i["file_name"].endswith(".png") for i in poly["images"])
    for img in poly["images"]:  # PNG is lossless: the pixels are exactly the flipped source's
        src = next(i for i in small.images if i["id"] == img["datatools"]["sources"][0])
        png = cv2.imread(str(tmp_path / "poly" / "images" / img["file_name"]))
        assert np.array_equal(png, cv2.imread(str(EXAMPLE / src["file_name"]))[:, ::-1])


def _overlap_dataset(folder: Path) -> Dataset:
    """Six 64x80 images, each with a class-A square and a class-B triangle that overlap (multilabel data)."""
    rng = np.random.default_rng(0)
    coco: dict[str, Any] = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "A"},
                                                                            {"id": 2, "name": "B"}]}
    (folder / "img").mkdir(parents=True)
    for i in range(6):
        cv2.imwrite(str(folder / "img" / f"{i}.png"), rng.integers(0, 255, (64, 80, 3), dtype=np.uint8))
        coco["images"].append({"id": i, "file_name": f"{i}.png", "width": 80, "height": 64})
        x, y = 10 + 4 * i, 8 + 3 * i
        coco["annotations"] += [
            {"id": 10 * i, "image_id": i, "category_id": 1, "iscrowd": 0, "bbox": [x, y, 30, 30], "area": 900,
             "segmentation": [[x, y, x + 30, y, x + 30, y + 30, x, y + 30]]},
            {"id": 10 * i + 1, "image_id": i, "category_id": 2, "iscrowd": 0, "bbox": [x + 15, y + 10, 30, 30],
             "area": 450, "segmentation": [[x + 15, y + 10, x + 45, y + 10, x + 30, y + 40]]}]
    (folder / "ann.json").write_text(json.dumps(coco))
    return Dataset.load(folder / "ann.json", folder / "img")


@pytest.mark.parametrize("op", sorted(OPS))
def test_overlapping_classes_keep_their_overlaps(tmp_path: Path, op: str) -> None:
    ds = _overlap_dataset(tmp_path / "src")
    A.save(A.Compose([A.HorizontalFlip(p=1.0), A.Affine(rotate=(-10, 10), p=1.0)]), tmp_path / "p.json")
    config = {"albu": AlbuConfig.from_file(tmp_path / "p.json"), "rotate": RotateConfig(angles=(90.0, 20.0)),
              "mosaic": MosaicConfig(center_range=(0.5, 0.5)),
              "copy-paste": CopyPasteConfig(classes="A", max_occlusion=0.05)}.get(op)
    run_augment(ds, tmp_path / "o", op, config, seed=0, workers=1, progress=False)
    coco = json.loads((tmp_path / "o" / "annotations.json").read_text())
    overlaps = 0
    for img in coco["images"]:
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        masks = {a["id"]: rle_to_mask(annotation_to_rle(a["segmentation"], img["height"], img["width"])) for a in anns}
        overlaps += sum(bool((masks[a["id"]] & masks[b["id"]]).any()) for a in anns for b in anns
                        if a["category_id"] == 1 and b["category_id"] == 2)
    assert overlaps >= len(coco["images"]) // 2, f"{op}: overlaps between classes must survive"


# ---- rare classes ------------------------------------------------------------------------------------------------
def test_rare_classes_and_target_planning(ds: Dataset) -> None:
    assert rare_classes({0: 0, 1: 210, 2: 262, 3: 259, 4: 268}, 0.8) == Rarity(0.8, (1,), (0,))
    assert rare_classes({1: 50, 2: 100, 3: 45}, 0.6).rare == (1, 3)
    index = SourceIndex.from_dataset(ds)
    with pytest.raises(InvalidDatasetError, match="not a category"):
        resolve_classes("Battery", index, 0.8)
    blood = resolve_classes("Blood bag", index, 0.8)
    plans = plan_rare_pastes(np.random.default_rng(0), index, blood, (1, 2), count=None, target_share=0.5)
    before = index.image_counts()[blood[0]]
    assert (before + len(plans)) / (len(index) + len(plans)) >= 0.5 > (before + len(plans) - 1) / (
        len(index) + len(plans) - 1)
    assert all(any(p[2] == blood[0] for p in picks) for _, picks in plans)


def test_copy_paste_target_images(ds: Dataset, tmp_path: Path) -> None:
    result = run_augment(ds, tmp_path / "o", "copy-paste", CopyPasteConfig(classes="Blood bag", target_images=20),
                         seed=2, workers=2, progress=False)
    n = len(ds.images) + result.images
    assert result.shares_after["Blood bag"] * n >= 20 - 1e-9 and result.images >= 9


# ---- command line --------------------------------------------------------------------------------------------------
def test_every_op_is_a_subcommand_with_an_example() -> None:
    for op in OPS:
        result = runner.invoke(app, ["augment", op, "--help"], terminal_width=200)
        assert result.exit_code == 0, op
        assert "Example" in result.output and f"datatools augment {op}" in result.output


@pytest.mark.parametrize("args", [
    ["flip", "--fold", "0"],
    ["copy-paste", "--classes", "Battery"],
    ["copy-paste", "--rare", "sometimes"],
    ["albu", "--pipeline", "missing.yaml"],
    ["mosaic", "--grid", "1x1"],
    ["rotate", "--angle-range", "10,-10"],
])
def test_bad_input_is_one_line_exit_2_nothing_written(tmp_path: Path, args: list[str]) -> None:
    result = runner.invoke(app, ["augment", *args, "--ann", str(ANN), "--images", str(EXAMPLE), "--out",
                                 str(tmp_path / "o"), "--no-progress"])
    assert result.exit_code == 2, result.output
    assert not (tmp_path / "o").exists()
    assert len([line for line in result.output.splitlines() if line.startswith("error:")]) == 1


def test_cli_albu_rotate_and_flip(tmp_path: Path) -> None:
    A.save(A.Compose([A.RandomRotate90(p=1.0), A.ColorJitter(p=0.5)]), tmp_path / "p.yaml", data_format="yaml")
    common = ["--ann", str(ANN), "--images", str(EXAMPLE), "--no-progress", "--workers", "2"]
    r = runner.invoke(app, ["augment", "albu", "--pipeline", str(tmp_path / "p.yaml"), "--copies", "2", "-n", "5",
                            "--out", str(tmp_path / "a"), *common])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["augment", "rotate", "--angles", "-15,15", "-n", "4", "--expand", "--out",
                            str(tmp_path / "r"), *common])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["augment", "flip", "--directions", "h,v", "--format", "png", "--segmentation", "polygon",
                            "--out", str(tmp_path / "f"), *common])
    assert r.exit_code == 0, r.output
    for name, n in (("a", 5), ("r", 4), ("f", 90)):
        coco = json.loads((tmp_path / name / "annotations.json").read_text())
        assert len(coco["images"]) == n
        assert {i["datatools"]["op"] for i in coco["images"]} == {{"a": "albu", "r": "rotate", "f": "flip"}[name]}


def test_too_few_images_for_a_mosaic(make_coco: Any, tmp_path: Path) -> None:
    ann, images, _ = make_coco()
    result = runner.invoke(app, ["augment", "mosaic", "--ann", str(ann), "--images", str(images), "--out",
                                 str(tmp_path / "o"), "--no-progress"])
    assert result.exit_code == 2 and "needs 4 different images, only 2" in result.output
    assert not (tmp_path / "o").exists()
    # flips work on the smallest dataset, and keep the extra per-record fields
    result = runner.invoke(app, ["augment", "flip", "--ann", str(ann), "--images", str(images), "--out",
                                 str(tmp_path / "f"), "--no-progress", "--merge"])
    assert result.exit_code == 0, result.output
    coco = json.loads((tmp_path / "f" / "annotations.json").read_text())
    assert coco["extra_top_level"] == {"kept": True}
    new = [i for i in coco["images"] if "datatools" in i]
    assert new[0]["extra"] == "img-a" and new[0]["file_name"] == "flip/flip_000000.png"
    assert any(a.get("extra") == {"note": "kept"} and "datatools" in a for a in coco["annotations"])
    assert len({a["id"] for a in coco["annotations"]}) == len(coco["annotations"]) == 6


def test_prefer_favours_images_of_the_preferred_class(ds: Dataset) -> None:
    index = SourceIndex.from_dataset(ds)
    blood = set(resolve_classes("Blood bag", index, 0.8))
    share = {}
    for prefer in (None, "Blood bag", "auto"):
        for op, config in (("mosaic", MosaicConfig(prefer=prefer, prefer_boost=6.0)),
                           ("ricap", RicapConfig(prefer=prefer, prefer_boost=6.0))):
            plans = OPS[op].plan(index, config, 300, np.random.default_rng(0))
            tiles = [s for p in plans for s in p.sources]
            assert all(len(set(p.sources)) == len(p.sources) for p in plans), "partners are different images"
            share[(op, prefer)] = np.mean([bool(index.classes_of[s] & blood) for s in tiles])
    base = np.mean([bool(index.classes_of[i] & blood) for i in index.image_ids])
    for op in ("mosaic", "ricap"):
        assert abs(share[(op, None)] - base) < 0.05
        assert share[(op, "Blood bag")] > base + 0.2 and share[(op, "auto")] > base + 0.1

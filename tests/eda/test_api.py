"""run_eda end to end on the bundled examples: outputs, determinism, normalisation numbers, options, bad input."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest

from datatools.core.errors import InvalidDatasetError, OutputExistsError
from datatools.core.imageio import read_image
from datatools.eda import run_eda
from datatools.eda.gallery import pick_gallery, source_key
from datatools.eda.meta import match_meta
from datatools.eda.tables import robust_outliers

VALID = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"
ANN = VALID / "_annotations.coco.json"
TABLES = ("images.parquet", "annotations.parquet", "classes.parquet", "summary.json")


def _hashes(out: Path, names: tuple[str, ...] = TABLES) -> dict[str, str]:
    return {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in names}


def _copy_dataset(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    root = tmp_path / "data"
    shutil.copytree(VALID, root)
    return root / "_annotations.coco.json", root, json.loads(ANN.read_text())


def test_outputs_are_deterministic_and_self_contained(tmp_path: Path) -> None:
    one = run_eda(ANN, VALID, out=tmp_path / "a", workers=1, progress=False)
    run_eda(ANN, VALID, out=tmp_path / "b", workers=2, progress=False)
    assert _hashes(tmp_path / "a") == _hashes(tmp_path / "b")
    html = (tmp_path / "a" / "report.html").read_text()
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|url\(\s*["']?(https?:)?//""", html, re.I)
    for anchor in ("classes", "sizes", "images", "overlap", "spatial", "problems", "gallery"):
        assert f'id="{anchor}"' in html
    assert html.count("data:image/png;base64,") >= 7 and "data:image/jpeg;base64," in html
    summary = json.loads((tmp_path / "a" / "summary.json").read_text())
    assert summary == one.summary
    coco = json.loads(ANN.read_text())
    assert summary["images"] == len(coco["images"]) and summary["annotations"] == len(coco["annotations"])


def test_normalize_numbers_equal_numpy_over_every_pixel(tmp_path: Path) -> None:
    result = run_eda(ANN, VALID, out=tmp_path / "e", workers=2, progress=False, gallery=0)
    coco = json.loads(ANN.read_text())
    pixels = np.concatenate([read_image(VALID / img["file_name"]).reshape(-1, 3) for img in coco["images"]])
    pixels = pixels.astype(np.float64) / 255
    norm = result.summary["normalize"]
    np.testing.assert_allclose(norm["mean"], pixels.mean(axis=0), atol=1e-6)
    np.testing.assert_allclose(norm["std"], pixels.std(axis=0), atol=1e-6)
    images = pd.read_parquet(tmp_path / "e" / "images.parquet")
    first = read_image(VALID / coco["images"][0]["file_name"]).astype(np.float64)
    assert images["mean_r"][0] == pytest.approx(first[..., 0].mean())
    luma = first.reshape(-1, 3) @ [0.299, 0.587, 0.114]
    assert images["brightness"][0] == pytest.approx(luma.mean(), rel=1e-9)
    assert images["contrast"][0] == pytest.approx(luma.std(), rel=1e-9)


def test_no_images_needs_no_image_folder_and_keeps_the_class_numbers(tmp_path: Path) -> None:
    run_eda(ANN, VALID, out=tmp_path / "full", workers=2, progress=False, gallery=0)
    result = run_eda(ANN, None, out=tmp_path / "ann", read_images=False, workers=2, progress=False)
    images = pd.read_parquet(tmp_path / "ann" / "images.parquet")
    assert "mean_r" not in images.columns and "brightness" not in images.columns
    assert result.summary["normalize"] is None and result.summary["images_read"] is False
    full = pd.read_parquet(tmp_path / "full" / "classes.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "ann" / "classes.parquet"), full)
    assert "--no-images" in (tmp_path / "ann" / "report.html").read_text()


def test_folds_give_per_fold_shares(tmp_path: Path) -> None:
    coco = json.loads(ANN.read_text())
    folds = pd.DataFrame({"image_id": [img["id"] for img in coco["images"]],
                          "file_name": [img["file_name"] for img in coco["images"]],
                          "group": [source_key(img["file_name"]) for img in coco["images"]]})
    groups = sorted(folds["group"].unique())
    folds["fold"] = [groups.index(g) % 3 for g in folds["group"]]
    folds = folds.iloc[1:]  # one image without a fold
    folds.to_parquet(tmp_path / "folds.parquet")
    result = run_eda(ANN, VALID, out=tmp_path / "e", folds=tmp_path / "folds.parquet", partial_folds=True,
                     workers=2, progress=False, gallery=0)
    images = pd.read_parquet(tmp_path / "e" / "images.parquet")
    assert images["fold"].isna().sum() == 1
    balance = pd.read_parquet(tmp_path / "e" / "fold_balance.parquet")
    px_cols = [c for c in images.columns if c.startswith("px_")]
    class_cols = [c for c in px_cols if c not in ("px_background", "px_ignore")]
    for (fold, name), row in balance.set_index(["fold", "class"]).iterrows():
        part = images[images["fold"] == fold]
        assert row["pixel_share"] == pytest.approx(part[f"px_{name}"].sum() / part[px_cols].to_numpy().sum())
        has = part["classes"].apply(lambda cs, n=name: n in list(cs))
        assert row["image_share"] == pytest.approx(has.mean())
        whole = images[images["fold"].notna()]
        overall = whole[f"px_{name}"].sum() / whole[px_cols].to_numpy().sum()
        assert row["pixel_share_deviation"] == pytest.approx(row["pixel_share"] - overall)
    s = result.summary["folds"]
    assert s["unassigned_images"] == 1 and s["folds"] == [0, 1, 2] and len(class_cols) == len(balance) // 3
    largest = s["pixel_share"]["largest"]
    assert abs(largest["deviation"]) == pytest.approx(balance["pixel_share_deviation"].abs().max(), abs=1e-6)
    assert 'id="folds"' in (tmp_path / "e" / "report.html").read_text()


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_meta_columns_are_matched_and_related(tmp_path: Path, suffix: str) -> None:
    coco = json.loads(ANN.read_text())
    rng = np.random.default_rng(0)
    names = [img["file_name"] for img in coco["images"]]
    meta = pd.DataFrame({"image": names, "age": rng.integers(20, 80, len(names)),
                         "sex": rng.choice(["F", "M"], len(names)), "note": [f"free text {i}" for i in names]})
    path = tmp_path / f"meta{suffix}"
    meta.to_csv(path, index=False) if suffix == ".csv" else meta.to_excel(path, index=False)
    result = run_eda(ANN, VALID, out=tmp_path / "e", meta=path, meta_key="image", workers=2, progress=False,
                     gallery=0)
    images = pd.read_parquet(tmp_path / "e" / "images.parquet")
    by_name = meta.set_index("image")
    assert images["meta_age"].tolist() == [float(by_name.loc[n, "age"]) for n in images["file_name"]]
    assert images["meta_sex"].tolist() == [by_name.loc[n, "sex"] for n in images["file_name"]]
    s = result.summary["meta"]
    assert s["matched_images"] == len(names) and s["columns"] == {"age": "numeric", "sex": "categorical"}
    assert s["skipped"] == ["note"]
    html = (tmp_path / "e" / "report.html").read_text()
    assert 'id="meta"' in html and "Spearman" in html
    with pytest.raises(InvalidDatasetError, match="no column 'ID'"):
        run_eda(ANN, VALID, out=tmp_path / "f", meta=path, meta_key="ID", progress=False)


def test_meta_keys_match_by_number_and_folder() -> None:
    images = [{"id": 10, "file_name": "ID001/a.png"}, {"id": 11, "file_name": "ID002/b.png"},
              {"id": 12, "file_name": "ID003/c.png"}]
    assert match_meta(images, [2, 1]) == ([1, 0, None], "folder (by number)")
    assert match_meta(images, ["c.png", "a.png"]) == ([1, None, 0], "name")
    assert match_meta(images, [12]) == ([None, None, 0], "id")


def test_broken_records_refuse_or_are_reported(tmp_path: Path) -> None:
    ann, root, coco = _copy_dataset(tmp_path)
    coco["annotations"][0]["category_id"] = 999
    ann.write_text(json.dumps(coco))
    with pytest.raises(InvalidDatasetError, match="category_id 999 matches no category"):
        run_eda(ann, root, out=tmp_path / "e", progress=False)
    assert not (tmp_path / "e").exists()
    result = run_eda(ann, root, out=tmp_path / "e", skip_invalid=True, workers=2, progress=False, gallery=0)
    assert result.summary["problems"]["codes"]["unknown-category"] == 1
    assert result.summary["annotations"] == len(coco["annotations"]) - 1
    assert "unknown-category" in (tmp_path / "e" / "report.html").read_text()


def test_missing_image_files_refuse_or_are_reported(tmp_path: Path) -> None:
    ann, root, coco = _copy_dataset(tmp_path)
    (root / coco["images"][2]["file_name"]).unlink()
    with pytest.raises(InvalidDatasetError, match=re.escape(coco["images"][2]["file_name"])):
        run_eda(ann, root, out=tmp_path / "e", workers=2, progress=False)
    assert not (tmp_path / "e").exists()
    result = run_eda(ann, root, out=tmp_path / "e", skip_invalid=True, workers=2, progress=False, gallery=0)
    images = pd.read_parquet(tmp_path / "e" / "images.parquet")  # left out, so not counted (issue 11 item 11)
    assert coco["images"][2]["id"] not in images["image_id"].tolist() and len(images) == 14
    assert images["file_problem"].isna().all() and not np.isnan(images["brightness"]).any()
    assert result.summary["problems"]["codes"]["missing-image"] == 1 and result.summary["images"] == 14
    assert result.summary["left_out"] == {"images": 1, "annotations": sum(
        a["image_id"] == coco["images"][2]["id"] for a in coco["annotations"])}


def test_output_rules_and_bad_options(tmp_path: Path) -> None:
    (tmp_path / "e").mkdir()
    (tmp_path / "e" / "keep.txt").write_text("x")
    with pytest.raises(OutputExistsError):
        run_eda(ANN, VALID, out=tmp_path / "e", progress=False)
    with pytest.raises(InvalidDatasetError, match="'Nope' is not a category"):
        run_eda(ANN, VALID, out=tmp_path / "f", overlap="class-priority:Nope", progress=False)
    assert not (tmp_path / "f").exists()
    result = run_eda(ANN, VALID, out=tmp_path / "e", overwrite=True, rare_threshold=0.3, read_images=False,
                     progress=False)
    assert not (tmp_path / "e" / "keep.txt").exists()
    classes = pd.read_parquet(tmp_path / "e" / "classes.parquet")
    cls = classes[classes["value"].between(1, 254)]
    held = cls[cls["images"] > 0]
    expected = held[held["images"] < 0.3 * held["images"].max()]
    assert result.summary["rare"] == {"threshold": 0.3, "rule": result.summary["rare"]["rule"],
                                      "classes": expected["name"].tolist(),
                                      "absent": cls[cls["images"] == 0]["name"].tolist()}


def test_outlier_images_are_flagged(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    (tmp_path / "img").mkdir()
    images, anns = [], []
    for i in range(20):
        level = 5 if i == 9 else 120 + int(rng.integers(-8, 9))
        pixels = np.clip(rng.normal(level, 30, (40, 40, 3)), 0, 255).astype(np.uint8)
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), pixels)
        images.append({"id": i + 1, "file_name": f"{i}.png", "width": 40, "height": 40})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                     "segmentation": [[2, 2, 20, 2, 20, 20, 2, 20]]})
    (tmp_path / "a.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                 "categories": [{"id": 1, "name": "thing"}]}))
    result = run_eda(tmp_path / "a.json", tmp_path / "img", out=tmp_path / "e", workers=2, progress=False)
    assert result.summary["brightness"]["outliers"] == [10]
    html = (tmp_path / "e" / "report.html").read_text()
    assert "Outlier images" in html and "9.png" in html


def test_robust_outliers_and_gallery_picks() -> None:
    values = np.array([10.0, 11, 9, 10, 12, 10, 11, 9, 10, 11, 10, 12, np.nan, 250])
    assert robust_outliers(values).tolist() == [False] * 13 + [True]
    core = np.r_[np.full(60, 50.0) + np.arange(60) % 3, np.linspace(30, 80, 40)]  # tight core, broad shoulders
    assert not robust_outliers(core).any()
    assert not robust_outliers(np.full(10, 3.0)).any()
    anns = [[{"category_id": 1, "area": 50}], [{"category_id": 1, "area": 50}, {"category_id": 2, "area": 9}],
            [{"category_id": 2, "area": 30}], [{"category_id": 2, "area": 20}], []]
    sources = ["a", "a", "b", "c", "d"]  # images 0 and 1 are copies of one photo
    picks = pick_gallery(anns, [1, 2], {1: 1, 2: 2}, per_class=2, sources=sources)
    assert picks[1] == [0]  # one photo only: its copy is not shown twice
    assert picks[2] == [2, 3]  # fresh photos before the one already shown
    assert source_key("x/img5_jpg.rf.9a893ecb74d8424e3bdb49ac1e1406c5.jpg") == "x/img5_jpg"

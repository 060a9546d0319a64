"""Exactness: what ``datatools pseudo-label`` writes, rendered by the one rasteriser, is the rule computed by hand;
a results file gives the annotations a plain pycocotools reference gives."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pseudo_fixtures import (
    count_components,
    reference_multiclass,
    reference_multilabel,
    smooth_probs,
    write_images,
    write_probs,
)
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.core.masks import rasterize_multilabel, rasterize_semantic, rle_to_mask

runner = CliRunner()
HW = (40, 56)
CATS = [{"id": 7, "name": "red", "supercategory": "s"}, {"id": 3, "name": "blue"}, {"id": 0, "name": "green"}]


def cli(*args: str) -> Any:
    result = runner.invoke(app, ["pseudo-label", "--no-progress", "--workers", "1", *args])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def _probs(n: int, channels: int, multilabel: bool, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [smooth_probs(rng, channels, HW, multilabel) for _ in range(n)]


@pytest.mark.parametrize(("threshold", "class_thresholds", "min_area"), [
    (0.6, [], 0),
    (0.2, [], 0),  # under the default --uncertain, which applies to results files only
    (0.7, ["red=0.95", "background=0.5"], 0),
    (0.5, ["blue=0.8"], 25),
])
def test_multiclass_labels_and_ignore_equal_the_rule(tmp_path: Path, threshold: float,
                                                      class_thresholds: list[str], min_area: int) -> None:
    data = write_images(tmp_path / "data", 4, HW, CATS)
    ds = Dataset.from_dir(data)
    probs = _probs(4, 4, multilabel=False)
    write_probs(tmp_path / "pred", {img["file_name"]: p for img, p in zip(ds.images, probs, strict=True)}, CATS,
                "multiclass")
    extra = [a for spec in class_thresholds for a in ("--class-threshold", spec)]
    cli("--probs", str(tmp_path / "pred"), "--data", str(data), "--out", str(tmp_path / "out"),
        "--threshold", str(threshold), "--min-area", str(min_area), *extra)
    out = Dataset.from_dir(tmp_path / "out")
    t = np.full(4, threshold, np.float32)
    for spec in class_thresholds:
        name, value = spec.split("=")
        t[["background", "red", "blue", "green"].index(name)] = float(value)
    assert [i["id"] for i in out.images] == [i["id"] for i in ds.images]
    assert [i["extra"] for i in out.images] == [0, 1, 2, 3]
    cm = out.class_map()
    ignored = labelled = 0
    for img, p in zip(out.images, probs, strict=True):
        want = reference_multiclass(p.astype(np.float32), t, min_area)
        info = img["datatools"]
        got = rasterize_semantic(out.annotations_of(img["id"]), *HW, cm, ignore=info.get("ignore", []))
        np.testing.assert_array_equal(got, want)
        anns = out.annotations_of(img["id"])
        for value, cat in enumerate((7, 3, 0), start=1):  # one annotation per connected component and class
            assert sum(a["category_id"] == cat for a in anns) == count_components(want == value)
        assert info["op"] == "pseudo-label" and info["sources"] == [img["file_name"]]
        assert info["params"]["threshold"] == threshold and info["params"]["min_area"] == min_area
        assert len(info["params"]["files"][0]["sha256"]) == 64
        assert info["confident_share"] == pytest.approx((want != 255).mean(), abs=1e-6)
        ignored += int((want == 255).sum())
        labelled += int(((want > 0) & (want < 255)).sum())
    assert labelled > 0 and (ignored > 0) == (threshold > 0.25), "the case must exercise labels and ignore"
    assert (tmp_path / "out" / "images" / "sub" / "im1.png").read_bytes() == \
        (data / "images" / "sub" / "im1.png").read_bytes()
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["written"] == 4 and summary["skipped"] == []
    assert sum(c["labelled_pixels"] for n, c in summary["classes"].items() if n != "background") == labelled


@pytest.mark.parametrize(("threshold", "class_thresholds", "min_area"), [(0.8, [], 0), (0.7, ["green=0.9"], 30)])
def test_multilabel_planes_and_ignore_equal_the_rule(tmp_path: Path, threshold: float, class_thresholds: list[str],
                                                     min_area: int) -> None:
    data = write_images(tmp_path / "data", 3, HW, CATS)
    ds = Dataset.from_dir(data)
    probs = _probs(3, 3, multilabel=True, seed=5)
    write_probs(tmp_path / "pred", {img["file_name"]: p for img, p in zip(ds.images, probs, strict=True)}, CATS,
                "multilabel")
    extra = [a for spec in class_thresholds for a in ("--class-threshold", spec)]
    cli("--probs", str(tmp_path / "pred"), "--data", str(data), "--out", str(tmp_path / "out"),
        "--threshold", str(threshold), "--min-area", str(min_area), *extra)
    out = Dataset.from_dir(tmp_path / "out")
    t = np.full(3, threshold, np.float32)
    if class_thresholds:
        t[2] = 0.9
    for img, p in zip(out.images, probs, strict=True):
        pos, ignore = reference_multilabel(p.astype(np.float32), t, min_area)
        assert ignore.any() and pos.any()
        got_ignore = np.zeros(HW, bool)
        for rle in img["datatools"].get("ignore", []):
            got_ignore |= rle_to_mask(rle)
        np.testing.assert_array_equal(got_ignore, ignore)
        planes = rasterize_multilabel(out.annotations_of(img["id"]), *HW, out.class_map())
        np.testing.assert_array_equal(planes, pos)


def test_several_probability_folders_are_averaged(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", 2, HW, CATS)
    ds = Dataset.from_dir(data)
    a, b = _probs(2, 4, False, seed=1), _probs(2, 4, False, seed=2)
    for name, probs in (("a", a), ("b", b)):
        write_probs(tmp_path / name, {img["file_name"]: p for img, p in zip(ds.images, probs, strict=True)}, CATS,
                    "multiclass")
    cli("--probs", str(tmp_path / "a"), "--probs", str(tmp_path / "b"), "--data", str(data), "--out",
        str(tmp_path / "out"), "--threshold", "0.6")
    out = Dataset.from_dir(tmp_path / "out")
    for img, pa, pb in zip(out.images, a, b, strict=True):
        mean = (pa.astype(np.float32) + pb.astype(np.float32)) / 2
        got = rasterize_semantic(out.annotations_of(img["id"]), *HW, out.class_map(),
                                 ignore=img["datatools"].get("ignore", []))
        np.testing.assert_array_equal(got, reference_multiclass(mean, np.full(4, 0.6, np.float32), 0))


def _instance(rng: np.random.Generator, image_id: int, cat: int, score: float) -> dict[str, Any]:
    y, x = (int(v) for v in rng.integers(0, 30, 2))
    m = np.zeros(HW, np.uint8)
    m[y:y + int(rng.integers(3, 15)), x:x + int(rng.integers(3, 20))] = 1
    rle = mask_utils.encode(np.asfortranarray(m))
    return {"image_id": image_id, "category_id": cat, "score": score,
            "segmentation": {"size": rle["size"], "counts": rle["counts"].decode()}}


def test_results_file_gives_the_pycocotools_reference(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", 3, HW, CATS)
    ds = Dataset.from_dir(data)
    rng = np.random.default_rng(3)
    results = [_instance(rng, img["id"], int(rng.choice([7, 3, 0])), float(s))
               for img in ds.images for s in rng.uniform(0, 1, 8)]
    (tmp_path / "res.json").write_text(json.dumps(results))
    cli("--predictions", str(tmp_path / "res.json"), "--data", str(data), "--out", str(tmp_path / "out"),
        "--threshold", "0.7", "--uncertain", "0.4")
    gt = COCO(str(data / "annotations.json"))
    ref = gt.loadRes(str(tmp_path / "res.json"))
    out = COCO(str(tmp_path / "out" / "annotations.json"))
    for img in ds.images:
        anns = ref.loadAnns(ref.getAnnIds(imgIds=[img["id"]]))
        keep = [a for a in anns if a["score"] >= 0.7]
        unsure = [a for a in anns if 0.4 <= a["score"] < 0.7]
        got = out.loadAnns(out.getAnnIds(imgIds=[img["id"]]))
        assert [a["category_id"] for a in got] == [a["category_id"] for a in keep]
        for g, k in zip(got, keep, strict=True):
            np.testing.assert_array_equal(out.annToMask(g), ref.annToMask(k))
            assert g["area"] == int(ref.annToMask(k).sum())
        want_ignore = np.zeros(HW, bool)
        for a in unsure:
            want_ignore |= ref.annToMask(a).astype(bool)
        for a in keep:
            want_ignore &= ~ref.annToMask(a).astype(bool)
        rec = out.imgs[img["id"]]
        got_ignore = np.zeros(HW, bool)
        for rle in rec["datatools"].get("ignore", []):
            got_ignore |= rle_to_mask(rle)
        np.testing.assert_array_equal(got_ignore, want_ignore)
    assert sum(len(out.getAnnIds(imgIds=[i["id"]])) for i in ds.images) > 0


def test_min_confident_skips_and_lists_images_and_output_is_deterministic(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", 4, HW, CATS)
    ds = Dataset.from_dir(data)
    probs = _probs(4, 4, False, seed=9)
    probs[2][:] = 0.25  # nothing confident in the third image
    write_probs(tmp_path / "pred", {img["file_name"]: p for img, p in zip(ds.images, probs, strict=True)}, CATS,
                "multiclass")
    args = ["--probs", str(tmp_path / "pred"), "--data", str(data), "--threshold", "0.6", "--min-confident", "0.2"]
    result = cli(*args, "--out", str(tmp_path / "o1"))
    assert "skipped 1" in result.output and "im2.png" in result.output
    first = {n: (tmp_path / "o1" / n).read_bytes() for n in ("annotations.json", "summary.json")}
    cli(*args, "--out", str(tmp_path / "o1"), "--overwrite", "--workers", "2")
    summary = json.loads((tmp_path / "o1" / "summary.json").read_text())
    assert summary["skipped"] == ["im2.png"] and summary["written"] == 3
    assert [i["file_name"] for i in Dataset.from_dir(tmp_path / "o1").images] == ["im0.png", "sub/im1.png",
                                                                                 "sub/im3.png"]
    assert first == {n: (tmp_path / "o1" / n).read_bytes() for n in first}

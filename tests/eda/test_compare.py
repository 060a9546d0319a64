"""``eda --compare``: class shares against pycocotools, leakage through the pHash of ``folds check``, the report.

The shared-data tests run one comparison of ../shared/data/medical_waste train, valid and test (module fixture).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.eda.compare import parse_compare

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
runner = CliRunner()


def _eda(*args: str | Path) -> Any:
    return runner.invoke(app, ["eda", *[str(a) for a in args], "--no-progress"])


def _reference_shares(ann: Path, pixels: bool = True) -> dict[str, dict[str, float]]:
    """Class shares by pycocotools: instances, images holding the class, and (``pixels``) pixels of the semantic
    mask painted smaller-on-top (largest first; ties in annotation order)."""
    coco = COCO(str(ann))
    cats = coco.loadCats(coco.getCatIds())
    n_images = len(coco.getImgIds())
    total = len(coco.getAnnIds())
    px = {c["id"]: 0 for c in cats}
    for img_id in coco.getImgIds() if pixels else []:
        img = coco.loadImgs(img_id)[0]
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id))
        masks = [coco.annToMask(a).astype(bool) for a in anns]
        order = sorted(range(len(anns)), key=lambda k: -int(masks[k].sum()))
        label = np.full((img["height"], img["width"]), -1, dtype=np.int64)  # category ids can be 0
        for k in order:
            label[masks[k]] = anns[k]["category_id"]
        for cid in px:
            px[cid] += int((label == cid).sum())
    labelled = max(sum(px.values()), 1)
    return {c["name"]: {"instances": len(coco.getAnnIds(catIds=[c["id"]])) / total,
                        "images": len(coco.getImgIds(catIds=[c["id"]])) / n_images,
                        "pixels": px[c["id"]] / labelled if pixels else float("nan")} for c in cats}


SHARED = (Path(__file__).parents[2] / ".." / "shared" / "data").resolve()


@pytest.fixture(scope="module")
def medical_waste(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Any]:
    """One comparison of the shared medical_waste splits for the module (as the ``shared_data`` fixture finds them)."""
    if not SHARED.is_dir():
        pytest.skip("../shared/data not present")
    mw = SHARED / "medical_waste"
    out = tmp_path_factory.mktemp("compare") / "eda"
    result = _eda("--ann", mw / "train" / "_annotations.coco.json", "--images", mw / "train", "--out", out,
                  "--workers", "2", "--compare", mw / "valid", "--compare", f"test={mw / 'test'}")
    assert result.exit_code == 0, result.output
    return mw, out, result


@pytest.mark.shared_data
def test_class_shares_equal_pycocotools(medical_waste: tuple[Path, Path, Any]) -> None:
    mw, out, result = medical_waste
    summary = json.loads((out / "summary.json").read_text())["compare"]
    assert [s["name"] for s in summary["splits"]] == ["train", "valid", "test"]
    assert "compare valid (50 images) vs train" in result.output
    for split in ("train", "valid", "test"):
        # pixels on the small splits only (rasterising the 2,304 train annotations again would take the test long)
        ref = _reference_shares(mw / split / "_annotations.coco.json", pixels=split != "train")
        for kind in ("instances", "images", "pixels") if split != "train" else ("instances", "images"):
            got = dict(zip(summary["classes"], summary["shares"][kind][split], strict=True))
            assert set(got) == set(ref)
            for name, shares in ref.items():
                assert got[name] == pytest.approx(shares[kind], abs=1e-6), (split, kind, name)
    # total variation of the instance shares, from the reference shares
    train, test = (_reference_shares(mw / s / "_annotations.coco.json", pixels=False) for s in ("train", "test"))
    tv = 0.5 * sum(abs(train[c]["instances"] - test[c]["instances"]) for c in train)
    assert summary["total_variation"]["instances"]["test"] == pytest.approx(tv, abs=1e-6)
    assert summary["ks"]["brightness"]["valid"]["statistic"] > 0


@pytest.mark.shared_data
def test_report_with_splits_renders_in_chromium(medical_waste: tuple[Path, Path, Any], tmp_path: Path) -> None:
    from test_report_chromium import CHROMIUM, check_not_blank, screenshot  # tests/eda is on sys.path

    if not CHROMIUM.exists():
        pytest.skip("needs headless Chromium: apt-get install -y chromium")
    _, out, _ = medical_waste
    html = (out / "report.html").read_text()
    assert 'id="splits"' in html and "Share of instances" in html and "Leakage across splits" in html
    image, console = screenshot(out / "report.html", tmp_path)
    assert console == [], f"console messages: {console}"
    check_not_blank(image)


def _flipped_reencoded(src: Path, dst: Path) -> None:
    image = cv2.imread(str(src))
    cv2.imwrite(str(dst), cv2.flip(image, 1), [cv2.IMWRITE_JPEG_QUALITY, 70])


def test_a_shared_image_flipped_and_reencoded_is_listed_as_leakage(tmp_path: Path) -> None:
    coco = json.loads((EXAMPLE / "_annotations.coco.json").read_text())
    # two images of different photos in the analysed split (their file names differ before ".rf.")
    stems: dict[str, dict[str, Any]] = {}
    for img in coco["images"]:
        stems.setdefault(img["file_name"].split(".rf.")[0], img)
    a, b = list(stems.values())[:2]
    train = tmp_path / "train"
    train.mkdir()
    keep = {a["id"], b["id"]}
    small = {**coco, "images": [a, b], "annotations": [x for x in coco["annotations"] if x["image_id"] in keep]}
    for img in (a, b):
        shutil.copy(EXAMPLE / img["file_name"], train / img["file_name"])
    (train / "_annotations.coco.json").write_text(json.dumps(small))
    test = tmp_path / "test_images"  # unlabelled: images only
    test.mkdir()
    _flipped_reencoded(EXAMPLE / a["file_name"], test / "copy_of_a.jpg")
    shutil.copy(EXAMPLE / b["file_name"], test / "same_as_b.jpg")
    other = next(img for stem, img in stems.items() if img not in (a, b))
    shutil.copy(EXAMPLE / other["file_name"], test / "unrelated.jpg")

    result = _eda("--ann", train / "_annotations.coco.json", "--images", train, "--out", tmp_path / "eda",
                  "--workers", "1", "--gallery", "0", "--compare", f"test={test}")
    assert result.exit_code == 0, result.output
    leakage = pd.read_parquet(tmp_path / "eda" / "leakage.parquet")
    found = {(r.file_a, r.file_b): r.kind for r in leakage.itertuples()}
    assert found == {(a["file_name"], "copy_of_a.jpg"): "near", (b["file_name"], "same_as_b.jpg"): "exact"}
    summary = json.loads((tmp_path / "eda" / "summary.json").read_text())["compare"]
    assert summary["leakage"] == {"exact": 1, "near": 1}
    assert summary["splits"][1] == {"name": "test", "images": 3, "labelled": False}
    # an unlabelled split: image-statistics drift only
    assert summary["ks"]["brightness"]["test"] is not None and summary["ks"]["objects per image"]["test"] is None
    assert "leakage across splits: 1 exact, 1 near" in result.output
    html = (tmp_path / "eda" / "report.html").read_text()
    assert "copy_of_a.jpg" in html and "Share of instances" not in html


def test_compare_refuses_bad_values_before_any_work(tmp_path: Path) -> None:
    ann = EXAMPLE / "_annotations.coco.json"
    for extra, message in ((["--compare", tmp_path / "missing"], "neither a COCO file nor a folder"),
                           (["--compare", f"={EXAMPLE}"], "the name before '=' is empty"),
                           (["--compare", EXAMPLE], "named alike"),
                           (["--compare", f"v={EXAMPLE}", "--no-images"], "drop --no-images")):
        result = _eda("--ann", ann, "--images", EXAMPLE, "--out", tmp_path / "eda", *extra)
        assert result.exit_code == 2, result.output
        assert message in result.output and "Traceback" not in result.output
        assert not (tmp_path / "eda").exists()


def test_parse_compare_forms(tmp_path: Path) -> None:
    (tmp_path / "ds" / "images").mkdir(parents=True)
    (tmp_path / "ds" / "annotations.json").write_text("{}")
    spec = parse_compare(str(tmp_path / "ds"))
    assert (spec.name, spec.ann, spec.root) == ("ds", tmp_path / "ds" / "annotations.json", tmp_path / "ds" / "images")
    spec = parse_compare(f"holdout={EXAMPLE / '_annotations.coco.json'}")
    assert (spec.name, spec.ann, spec.root) == ("holdout", EXAMPLE / "_annotations.coco.json", EXAMPLE)
    odd = tmp_path / "a=b"
    odd.mkdir()
    spec = parse_compare(str(odd))  # an '=' inside a path is part of the path
    assert (spec.name, spec.ann, spec.root) == ("a=b", None, odd)

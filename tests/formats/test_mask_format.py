"""``--mask-format palette|gray`` on every command that writes mask PNGs (issue 11 item 14): palette PNGs give the
class values to PIL (and colours to OpenCV); gray PNGs give the class values to ``cv2.IMREAD_UNCHANGED`` too."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.core.masks import rasterize_semantic


def run(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}"
    return result.output


def _truth(ann: Path, images: Path) -> dict[str, np.ndarray]:
    ds = Dataset.load(ann, images)
    cm = ds.class_map()
    return {Path(img["file_name"]).with_suffix(".png").as_posix():
            rasterize_semantic(ds.annotations_of(img["id"]), img["height"], img["width"], cm) for img in ds.images}


def _pil(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im)


@pytest.mark.parametrize("fmt", ["palette", "gray"])
def test_convert_masks_and_from_submission_write_the_chosen_format(fmt: str, make_coco, tmp_path: Path) -> None:
    ann, images, _ = make_coco()
    truth = _truth(ann, images)
    assert any(t.max() > 0 for t in truth.values())
    out = tmp_path / "masks"
    run("convert", "masks", "--ann", str(ann), "--images", str(images), "--out", str(out), "--mask-format", fmt,
        "--workers", "1")
    run("convert", "submission", "--masks", str(out), "--style", "class-ids", "--size", "16", "--out",
        str(tmp_path / "sub.csv"))
    back = tmp_path / "back"
    run("convert", "from-submission", "--csv", str(tmp_path / "sub.csv"), "--style", "class-ids", "--classes",
        str(out / "classes.json"), "--size", "16", "--out", str(back), "--mask-format", fmt)
    for folder in (out / "ann_dir", back / "ann_dir"):
        for path in sorted(folder.rglob("*.png")):
            with Image.open(path) as im:
                assert im.mode == ("P" if fmt == "palette" else "L"), path
            cv = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
            if fmt == "gray":
                assert cv.ndim == 2 and np.array_equal(cv, _pil(path)), path  # OpenCV reads the class values
            else:
                assert cv.ndim == 3  # OpenCV reads the palette's colours: why gray exists
    for name, expected in truth.items():
        np.testing.assert_array_equal(_pil(out / "ann_dir" / name), expected)  # both formats: PIL reads values
        if fmt == "gray":
            np.testing.assert_array_equal(cv2.imread(str(out / "ann_dir" / name), cv2.IMREAD_UNCHANGED), expected)
    # a gray folder reads back into the same dataset as a palette one
    run("convert", "from-masks", "--masks", str(out), "--out", str(tmp_path / "ds"))
    ds = Dataset.from_dir(tmp_path / "ds")
    assert len(ds.images) == len(truth)


def test_bad_mask_format_is_refused_before_work(make_coco, tmp_path: Path) -> None:
    ann, images, _ = make_coco()
    result = CliRunner().invoke(app, ["convert", "masks", "--ann", str(ann), "--images", str(images), "--out",
                                      str(tmp_path / "m"), "--mask-format", "rgb"])
    assert result.exit_code == 2 and not (tmp_path / "m").exists()

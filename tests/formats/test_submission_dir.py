"""Mask folder -> submission CSV -> mask folder, for both competition styles."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from datatools.core.classes import ClassMap
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.formats.mask_dir import coco_to_mask_dir
from datatools.formats.multilabel_npz import read_multilabel
from datatools.formats.submission_dir import mask_dir_to_submission, submission_to_mask_dir

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"


@pytest.fixture(scope="module")
def mask_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    ds = Dataset.load(EXAMPLE / "_annotations.coco.json", EXAMPLE)
    return coco_to_mask_dir(ds, tmp_path_factory.mktemp("m") / "masks", workers=1, progress=False).out


def _pngs(root: Path) -> dict[str, np.ndarray]:
    return {p.stem: np.asarray(Image.open(p)) for p in sorted(root.glob("*.png"))}


def test_class_ids_round_trip(mask_dir: Path, tmp_path: Path) -> None:
    n = mask_dir_to_submission(mask_dir, tmp_path / "sub.csv", "class-ids", size=64)
    original = _pngs(mask_dir / "ann_dir")
    assert n == len(original) > 0
    header, first = (tmp_path / "sub.csv").read_text().splitlines()[:2]
    assert header == "image_id,PredictionString"
    assert first.split(",")[0].endswith(".jpg")  # image names with their extension, from img_dir
    cm = ClassMap.load(mask_dir / "classes.json")
    out = submission_to_mask_dir(tmp_path / "sub.csv", tmp_path / "back", "class-ids", cm, size=64)
    assert out == n
    back = _pngs(tmp_path / "back" / "ann_dir")
    assert back.keys() == original.keys()
    nonzero = 0
    for stem, mask in original.items():
        expected = cv2.resize(mask, (64, 64), interpolation=cv2.INTER_NEAREST)
        assert np.array_equal(back[stem], expected)
        nonzero += int(expected.any())
    assert nonzero > 0


def test_rle_round_trip(mask_dir: Path, tmp_path: Path) -> None:
    mask_dir_to_submission(mask_dir, tmp_path / "sub.csv", "rle")
    cm = ClassMap.load(mask_dir / "classes.json")
    lines = (tmp_path / "sub.csv").read_text().splitlines()
    original = _pngs(mask_dir / "ann_dir")
    assert lines[0] == "image_name,class,rle" and len(lines) == 1 + len(original) * len(cm)
    submission_to_mask_dir(tmp_path / "sub.csv", tmp_path / "back", "rle", cm, shape_hw=(640, 640))
    for stem, mask in original.items():
        planes = read_multilabel(tmp_path / "back" / "ann_dir" / f"{stem}.npz")
        for c in cm.classes:
            assert np.array_equal(planes[c.value - 1], mask == c.value)


def test_names_escaping_the_output_are_refused(tmp_path: Path) -> None:
    csv = tmp_path / "sub.csv"
    csv.write_text("image_id,PredictionString\n../../evil.jpg," + " ".join(["0"] * 16) + "\n")
    cm = ClassMap.from_categories([{"id": 1, "name": "a"}])
    with pytest.raises(InvalidDatasetError, match="escapes"):
        submission_to_mask_dir(csv, tmp_path / "out", "class-ids", cm, size=4)
    assert not (tmp_path / "out").exists() and not (tmp_path.parent / "evil.png").exists()

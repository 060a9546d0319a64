"""Copy-paste donors: only the pixels around the pasted objects are read, and they are cached per object; the
outputs are byte for byte those made from whole donor images."""

from __future__ import annotations

import dataclasses
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from datatools.augment import OPS, CopyPasteConfig, run_augment
from datatools.augment._load import DONOR_MARGIN, clear_crops, load_donor, load_sample
from datatools.core.dataset import Dataset

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
ANN = EXAMPLE / "_annotations.coco.json"


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("config", [CopyPasteConfig(), CopyPasteConfig(angle_range=(-30, 30), scale_range=(0.5, 1.5),
                                                                        blend="gaussian")])
def test_outputs_equal_those_from_whole_donor_images(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     config: CopyPasteConfig) -> None:
    ds = Dataset.load(ANN, EXAMPLE)
    run_augment(ds, tmp_path / "donors", "copy-paste", config, count=24, seed=5, workers=2, progress=False)
    monkeypatch.setitem(OPS, "copy-paste", dataclasses.replace(OPS["copy-paste"], donors=False))
    run_augment(ds, tmp_path / "whole", "copy-paste", config, count=24, seed=5, workers=1, progress=False)
    donors, whole = _hashes(tmp_path / "donors"), _hashes(tmp_path / "whole")
    assert len(donors) == 25 and donors == whole


def test_donor_holds_the_pixels_around_its_objects_and_is_served_from_the_cache(tmp_path: Path) -> None:
    root = tmp_path / "images"
    shutil.copytree(EXAMPLE, root)
    ds = Dataset.load(root / "_annotations.coco.json", root)
    image = next(img for img in ds.images if len(ds.annotations_of(img["id"])) >= 2)
    anns = [a["id"] for a in ds.annotations_of(image["id"])][:2]
    clear_crops()
    whole = load_sample(ds, image["id"], anns, order="bgr")
    donor = load_donor(ds, image["id"], anns, "bgr")
    np.testing.assert_array_equal(donor.masks, whole.masks)
    assert donor.objects == whole.objects
    (root / image["file_name"]).unlink()  # from now on only the cache can give the pixels
    cached = load_donor(ds, image["id"], anns, "bgr")
    h, w = whole.size_hw
    inside = np.zeros((h, w), dtype=bool)
    for y0, x0, y1, x1 in (b for b in whole.boxes_yxyx if b is not None):
        m = DONOR_MARGIN
        inside[max(0, y0 - m):y1 + m, max(0, x0 - m):x1 + m] = True
    np.testing.assert_array_equal(cached.image[inside], whole.image[inside])
    assert not cached.image[~inside].any()
    np.testing.assert_array_equal(cached.masks, whole.masks)
    clear_crops()

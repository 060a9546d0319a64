"""Ops with a fast path are byte for byte the general path: flips move each object's RLE on its run lengths, mosaic
and RICAP carry box crops; the general path rasterises every object into (H, W) planes, transforms the Sample and
encodes every plane."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from datatools.augment import OPS, FlipConfig, run_augment
from datatools.augment._frames import moved_fields
from datatools.augment.geometric import FlipDirection, FlipParams, flip_move
from datatools.core.dataset import Dataset
from datatools.core.masks import annotation_to_rle

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def ds() -> Dataset:
    return Dataset.load(EXAMPLE / "_annotations.coco.json", EXAMPLE)


def test_flip_files_equal_the_general_path(ds: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = FlipConfig(directions=("h", "v", "hv"))
    run_augment(ds, tmp_path / "moved", "flip", config, seed=2, workers=2, progress=False)
    monkeypatch.setitem(OPS, "flip", dataclasses.replace(OPS["flip"], move=None))
    run_augment(ds, tmp_path / "general", "flip", config, seed=2, workers=1, progress=False)
    moved, general = _hashes(tmp_path / "moved"), _hashes(tmp_path / "general")
    assert len(moved) == 3 * len(ds.images) + 1 and moved == general


@pytest.mark.parametrize("direction", list(FlipDirection))
def test_moved_masks_are_the_flipped_rasterisation(ds: Dataset, direction: FlipDirection) -> None:
    img = max(ds.images, key=lambda i: len(ds.annotations_of(i["id"])))  # 87 objects, many overlapping
    hw = (img["height"], img["width"])
    objects, fields = moved_fields(ds, img["id"], None, hw, flip_move(FlipParams(direction), hw))
    anns = ds.annotations_of(img["id"])
    assert [o.source_annotation_id for o in objects] == [a["id"] for a in anns]
    fy, fx = direction in (FlipDirection.V, FlipDirection.HV), direction in (FlipDirection.H, FlipDirection.HV)
    for ann, f in zip(anns, fields, strict=True):
        mask = mask_utils.decode(annotation_to_rle(ann["segmentation"], *hw))
        expected = mask[::-1 if fy else 1, ::-1 if fx else 1]
        np.testing.assert_array_equal(mask_utils.decode(f["segmentation"]), expected)
        assert f["area"] == float(expected.sum())


@pytest.mark.parametrize(("op", "config"), [
    ("mosaic", None), ("mosaic", "3x3-resized"), ("ricap", None)], ids=["mosaic", "mosaic-3x3-resized", "ricap"])
def test_tile_cuts_from_crops_equal_the_general_path(ds: Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     op: str, config: str | None) -> None:
    """Mosaic and RICAP cut box crops (``AugmentOp.cut``); without it the runner rasterises (H, W) planes, cuts
    Samples and encodes the planes: the same files."""
    from datatools.augment import MosaicConfig

    cfg = MosaicConfig(grid_hw=(3, 3), size_hw=(500, 700), min_area=1) if config else None
    run_augment(ds, tmp_path / "crops", op, cfg, count=16, seed=7, workers=2, progress=False)
    monkeypatch.setitem(OPS, op, dataclasses.replace(OPS[op], cut=None))
    run_augment(ds, tmp_path / "general", op, cfg, count=16, seed=7, workers=1, progress=False)
    crops, general = _hashes(tmp_path / "crops"), _hashes(tmp_path / "general")
    assert len(crops) == 17 and crops == general

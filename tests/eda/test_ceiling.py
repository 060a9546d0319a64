"""``datatools eda --train-size``: the resolution ceiling (the masks' round trip through the trainer's resizes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.eda.ceiling import parse_train_sizes, resolution_ceiling
from datatools_train.resize import round_trip

VALID = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"
runner = CliRunner()


def test_round_trip_by_hand() -> None:
    mask = np.zeros((64, 64), np.uint8)
    mask[8:40, 8:40] = 1  # survives 32 px (every 2x2 block is whole)
    mask[51, 51] = 2  # one-pixel objects: nearest neighbour down to 32 px keeps the even rows and columns only,
    mask[50, 56] = 3  # so the first is lost and the second comes back as a 2x2 block
    assert (round_trip(mask, 64, False) == mask).all()
    back = round_trip(mask, 32, False)
    assert (back[8:40, 8:40] == 1).all() and (back == 2).sum() == 0 and (back == 3).sum() == 4
    planes = np.stack([mask == 1, mask == 2, mask == 3])
    assert (round_trip(planes, 64, True) == planes).all()
    assert round_trip(planes, 32, True)[1].sum() == 0


def test_parse_train_sizes() -> None:
    assert parse_train_sizes("640,128,256,128") == [128, 256, 640]
    for bad in ("100", "abc", "", "0", "-32"):
        with pytest.raises(ValueError):
            parse_train_sizes(bad)


@pytest.mark.shared_data
def test_medical_waste_valid_ceiling_rises_with_size_and_is_one_at_native(shared_data: Path) -> None:
    valid = shared_data / "medical_waste" / "valid"
    ds = Dataset.load(valid / "_annotations.coco.json", valid)
    assert {(img["height"], img["width"]) for img in ds.images} == {(640, 640)}
    table = resolution_ceiling(ds, [128, 256, 512, 640], workers=2, progress=False).table
    assert set(table["class"]) == {"Blood bag", "Mask", "ampoule", "syringe"}  # the empty placeholder has none
    for metric in ("iou", "dice", "boundary_iou"):
        wide = table.pivot(index="class", columns="size", values=metric)
        assert (wide.diff(axis=1).iloc[:, 1:] > 0).all().all(), wide
        assert (wide[640] == 1.0).all()
        assert (wide[128] < 0.99).all()


def test_eda_cli_writes_the_ceiling_into_the_report(tmp_path: Path) -> None:
    out = tmp_path / "eda"
    result = runner.invoke(app, ["eda", "--ann", str(VALID / "_annotations.coco.json"), "--no-images", "--out",
                                 str(out), "--train-size", "64,128", "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(out / "ceiling.parquet")
    assert sorted(set(table["size"])) == [64, 128] and (table["iou"] <= 1).all()
    html = (out / "report.html").read_text()
    assert html.count('id="ceiling"') == 1 and 'href="#ceiling"' in html and (out / "ceiling.png").is_file()
    ds = Dataset.load(VALID / "_annotations.coco.json", VALID)
    direct = resolution_ceiling(ds, [64, 128], workers=1, progress=False).table
    pd.testing.assert_frame_equal(table, direct)

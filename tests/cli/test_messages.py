"""Messages that misled (issue 11 item 11): option names instead of config field names, a --center-range message
that says why and what works, a file given as a folder, a missing --data folder, panoptic and captions files, and
eda --skip-invalid counting what it left out."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app

ROOT = Path(__file__).parents[2]
TRAIN = ROOT / "examples" / "medical_waste" / "train"
ANN = TRAIN / "_annotations.coco.json"
SRC = ["--ann", str(ANN), "--images", str(TRAIN)]
runner = CliRunner()


def _error(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def test_grid_4x4_says_which_center_range_works(tmp_path: Path) -> None:
    line = _error(["augment", "mosaic", *SRC, "--grid", "4x4", "--out", str(tmp_path / "m")])
    assert "--center-range must lie strictly between 0.25 and 0.75 for a 4x4 grid" in line
    assert "got 0.25,0.75" in line and "e.g. 0.375,0.625" in line
    ok = runner.invoke(app, ["augment", "mosaic", *SRC, "--grid", "4x4", "--center-range", "0.375,0.625", "-n", "1",
                             "--out", str(tmp_path / "m"), "--no-progress", "--workers", "1"])
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize(("args", "option"), [
    (["augment", "mosaic", "--size", "1"], "--size (1, 1) is too small for a 2x2 grid"),
    (["augment", "ricap", "--size", "1"], "--size must be at least (2, 2)"),
    (["augment", "copy-paste", "--target-share", "2"], "--target-share must be within (0, 1)"),
    (["augment", "copy-paste", "--objects-range", "3,1"], "--objects-range must be (min, max)"),
    (["augment", "copy-paste", "--target-share", "0.5", "--target-images", "3"],
     "give --target-share or --target-images, not both"),
    (["train", "fit", "--size", "33"], "--size must be a positive multiple of 32"),
    (["train", "fit", "--lr", "0"], "--lr must be > 0 and --weight-decay >= 0"),
])
def test_messages_name_options_not_config_fields(tmp_path: Path, args: list[str], option: str) -> None:
    line = _error([*args[:2], *SRC, *args[2:], "--out", str(tmp_path / "o")])
    assert option in line
    assert "size_hw" not in line and "target_share" not in line and "_range" not in line


@pytest.mark.parametrize("command", [["validate"], ["eda"], ["folds"], ["train", "fit"]])
def test_a_file_given_as_a_folder(tmp_path: Path, command: list[str]) -> None:
    readme = ROOT / "README.md"
    line = _error([*command, "--ann", str(ANN), "--images", str(readme), "--out", str(tmp_path / "o")]
                  if command != ["validate"] else [*command, "--ann", str(ANN), "--images", str(readme)])
    assert line.startswith(f"error: {readme}: is a file, expected an image folder")


@pytest.mark.parametrize("data", ["missing", "file"])
def test_data_that_is_missing_or_a_file(tmp_path: Path, data: str) -> None:
    path = tmp_path / "nope" if data == "missing" else ROOT / "README.md"
    line = _error(["validate", "--data", str(path)])
    assert line == (f"error: {path}: dataset folder not found" if data == "missing"
                    else f"error: {path}: is a file, expected a dataset folder")


@pytest.mark.shared_data
@pytest.mark.parametrize(("name", "kind"), [("coco/annotations/panoptic_val.json", "a COCO panoptic file"),
                                            ("coco_panoptic/annotations/panoptic_train.json", "a COCO panoptic file"),
                                            ("coco/annotations/captions_val.json", "a COCO captions file"),
                                            ("coco_captions/annotations/captions_train.json", "a COCO captions file")])
def test_panoptic_and_captions_files_are_named(shared_data: Path, tmp_path: Path, name: str, kind: str) -> None:
    path = shared_data / "coco_edge_cases" / "coco_dataset" / name
    for args in (["validate", "--ann", str(path), "--images", str(tmp_path)],
                 ["eda", "--ann", str(path), "--images", str(tmp_path), "--out", str(tmp_path / "e")]):
        line = _error(args)
        assert line.startswith(f"error: {path}: not an instance-segmentation file: {kind}")


def test_eda_skip_invalid_counts_only_what_it_analysed(tmp_path: Path) -> None:
    coco = json.loads(ANN.read_text())
    bad_images = {coco["images"][0]["id"], coco["images"][1]["id"]}
    coco["images"][0]["file_name"] = "missing.jpg"  # a file error
    coco["images"][1]["width"] = -5  # a record error
    far = [a for a in coco["annotations"] if a["image_id"] not in bad_images][:2]
    far[0]["category_id"], far[1]["segmentation"] = 99, None  # two annotation errors
    (tmp_path / "ann.json").write_text(json.dumps(coco))
    kept_images = len(coco["images"]) - 2
    kept_anns = len([a for a in coco["annotations"] if a["image_id"] not in bad_images]) - 2
    result = runner.invoke(app, ["eda", "--ann", str(tmp_path / "ann.json"), "--images", str(TRAIN),
                                 "--skip-invalid", "--out", str(tmp_path / "e"), "--no-progress", "--gallery", "0",
                                 "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert f"({kept_images} images, {kept_anns} annotations," in result.stdout
    left = len(coco["annotations"]) - kept_anns
    assert f"--skip-invalid left out 2 image(s) and {left} annotation(s)" in result.stderr
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["images"] == kept_images == len(pd.read_parquet(tmp_path / "e" / "images.parquet"))
    assert summary["left_out"] == {"images": 2, "annotations": left}

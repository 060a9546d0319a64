"""``clean --apply`` through the CLI: the cleaned dataset validates, removed.json is exactly what was dropped or
changed, the inputs are untouched, the outputs are byte-identical run to run; bad options fail before work."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clean_builders import annotation, smooth_image, square, tree_digest, write_dataset
from pycocotools import mask as mask_utils
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.coco import read_coco_json
from datatools.core.issues import Severity
from datatools.core.masks import annotation_to_rle
from datatools.core.validate import validate_records
from datatools.core.validate_files import validate_files

runner = CliRunner()


@pytest.fixture
def dirty(tmp_path: Path) -> tuple[Path, Path, dict[str, Any]]:
    rng = np.random.default_rng(5)
    base = smooth_image(rng)
    images = [("a.png", base), ("b.png", base.copy()), ("c.png", smooth_image(rng)), ("d.png", smooth_image(rng))]
    anns = [annotation(1, 1, 1, square(4, 4, 20)), annotation(2, 1, 2, square(30, 30, 20)),
            annotation(3, 2, 1, square(4, 4, 20)),  # on the exact copy: goes with it
            annotation(4, 3, 1, square(10, 10, 30)), annotation(5, 3, 1, square(10, 10, 30)),  # double
            {"id": 6, "image_id": 4, "category_id": 2, "segmentation": [[1, 1, 9, 9]], "iscrowd": 0},  # broken
            annotation(7, 4, 2, square(20, 20, 20))]
    return write_dataset(tmp_path / "ds", images, anns)


def _ids(coco: dict[str, Any], section: str) -> set[int]:
    return {r["id"] for r in coco[section]}


def test_apply_default_drop_validates_lists_removed_and_leaves_inputs(tmp_path: Path, dirty: Any) -> None:
    ann, root, coco = dirty
    before = tree_digest(ann.parent)
    out = tmp_path / "out"
    result = runner.invoke(app, ["clean", "--ann", str(ann), "--images", str(root), "--out", str(out), "--apply",
                                 "--workers", "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert tree_digest(ann.parent) == before
    new = read_coco_json(out / "dataset" / "annotations.json")
    issues = validate_records(new, "new") + validate_files(new, out / "dataset" / "images", workers=1)
    assert not [i for i in issues if i.severity is Severity.ERROR]
    removed = json.loads((out / "removed.json").read_text())
    dropped_images = _ids(coco, "images") - _ids(new, "images")
    dropped_anns = _ids(coco, "annotations") - _ids(new, "annotations")
    assert dropped_images == {2}  # the exact copy (a keeps: more annotations)
    assert dropped_anns == {3, 6}  # the copy's annotation, the broken one; the double stays by default
    assert {r["id"] for r in removed if r["record"] == "image"} == dropped_images
    assert {r["id"] for r in removed if r["record"] == "annotation"} == dropped_anns
    assert all(r["action"] == "dropped" and r["reasons"] for r in removed)
    assert sorted(p.name for p in (out / "dataset" / "images").iterdir()) == ["a.png", "c.png", "d.png"]
    # kept records are unchanged, every field
    assert [r for r in coco["annotations"] if r["id"] not in dropped_anns] == new["annotations"]


def test_apply_as_ignore_turns_flagged_annotations_into_ignore_regions(tmp_path: Path, dirty: Any) -> None:
    ann, root, coco = dirty
    out = tmp_path / "out"
    result = runner.invoke(app, ["clean", "--ann", str(ann), "--images", str(root), "--out", str(out), "--apply",
                                 "--drop", "double-annotation,invalid-annotation", "--as-ignore", "--no-progress"])
    assert result.exit_code == 0, result.output
    new = read_coco_json(out / "dataset" / "annotations.json")
    removed = {r["id"]: r for r in json.loads((out / "removed.json").read_text())}
    assert removed[5]["action"] == "ignored" and removed[5]["kinds"] == ["double-annotation"]
    assert removed[6]["action"] == "dropped"  # no pixels to ignore
    assert set(removed) == {5, 6} and _ids(new, "images") == {1, 2, 3, 4}
    image3 = next(r for r in new["images"] if r["id"] == 3)
    (region,) = image3["datatools"]["ignore"]
    expected = mask_utils.decode(annotation_to_rle(coco["annotations"][4]["segmentation"], 64, 64))
    assert np.array_equal(mask_utils.decode(region), expected)


def test_outputs_are_byte_identical_run_to_run(tmp_path: Path, dirty: Any) -> None:
    ann, root, _ = dirty
    for name, workers in (("one", "1"), ("two", "2")):
        result = runner.invoke(app, ["clean", "--ann", str(ann), "--images", str(root), "--out",
                                     str(tmp_path / name), "--apply", "--workers", workers, "--no-progress"])
        assert result.exit_code == 0, result.output
    for rel in ("findings.parquet", "images.parquet", "summary.json", "removed.json", "dataset/annotations.json"):
        assert (tmp_path / "one" / rel).read_bytes() == (tmp_path / "two" / rel).read_bytes(), rel


@pytest.mark.parametrize(("args", "message"), [
    (["--as-ignore"], "--as-ignore goes with --apply"),
    (["--checks", "labels"], "--checks labels needs --probs"),
    (["--checks", "colour"], "unknown check"),
    (["--apply", "--drop", "typo"], "--drop: unknown kind 'typo'"),
    (["--probs", "nowhere"], "--probs folder not found"),
    (["--against", "nowhere"], "nowhere: --against names no dataset"),
])
def test_bad_options_fail_with_one_line_and_write_nothing(tmp_path: Path, dirty: Any, args: list[str],
                                                          message: str) -> None:
    ann, root, _ = dirty
    out = tmp_path / "out"
    result = runner.invoke(app, ["clean", "--ann", str(ann), "--images", str(root), "--out", str(out), *args])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not out.exists()


def test_missing_probabilities_are_refused_before_the_pass(tmp_path: Path, dirty: Any) -> None:
    ann, root, _ = dirty
    probs = tmp_path / "probs"
    probs.mkdir()
    np.save(probs / "a.npy", np.full((4, 64, 64), 0.25, np.float16))
    result = runner.invoke(app, ["clean", "--ann", str(ann), "--images", str(root), "--out", str(tmp_path / "o"),
                                 "--probs", str(probs)])
    assert result.exit_code == 2
    assert "no probability file for image 'b.png' (and 2 more)" in result.stderr
    assert not (tmp_path / "o").exists()


def test_the_command_line_imports_no_check_until_clean_runs() -> None:
    import subprocess
    import sys

    code = ("import sys; from datatools.cli.main import app\n"
            "print([m for m in ('datatools.clean.api', 'datatools.eda', 'cleanlab', 'torch') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

"""Splits follow provenance on the real medical-waste train split (../shared/data) merged with 200 mosaics.

``datatools augment mosaic --merge -n 200`` then ``datatools folds`` (k=5, with and without the Roboflow regex):
no mosaic lands in another fold than any of its four sources, and ``folds check`` agrees; with
``--ignore-provenance`` it names the pairs. The figures (groups before/after, largest class-share deviation,
fold sizes) are printed (``pytest -s``). 200 mosaics of 4 images drawn across 512 join most of the split into one
group; the folds are then far from equal, and ``folds`` says so.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from provenance_reference import crossing, fold_map, reference_components
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.folds import ROBOFLOW_REGEX

pytestmark = pytest.mark.shared_data
REGEX = "regex:" + ROBOFLOW_REGEX
runner = CliRunner()


@pytest.fixture(scope="module")
def merged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = (Path(__file__).parents[2] / ".." / "shared" / "data" / "medical_waste" / "train").resolve()
    if not root.is_dir():
        pytest.skip("../shared/data not present")
    out = tmp_path_factory.mktemp("mw") / "mosaic200"
    result = runner.invoke(app, ["augment", "mosaic", "--ann", str(root / "_annotations.coco.json"), "--images",
                                 str(root), "--out", str(out), "--merge", "-n", "200", "--seed", "0", "--workers",
                                 "2", "--no-progress"])
    assert result.exit_code == 0, result.output
    return out


@pytest.mark.parametrize("group_by", [[], ["--group-by", REGEX]], ids=["no-group-by", "regex"])
def test_mosaics_stay_with_their_sources(merged: Path, tmp_path: Path, group_by: list[str]) -> None:
    coco = json.loads((merged / "annotations.json").read_text())
    assert len(coco["images"]) == 712
    out = tmp_path / "folds"
    result = runner.invoke(app, ["folds", "--data", str(merged), "--k", "5", "--seed", "42", "--out", str(out),
                                 *group_by, "--workers", "2", "--no-progress"], terminal_width=400)
    assert result.exit_code == 0, result.output
    fold_of = fold_map(out)
    assert crossing(coco, fold_of) == set()  # 0 violations
    summary = json.loads((out / "summary.json").read_text())
    keys = [img["file_name"].split(".rf.")[0] for img in coco["images"]] if group_by else None
    reference = reference_components(coco, keys)
    assert summary["groups"] == len(set(reference.tolist()))
    prov = summary["provenance"]
    assert prov["derived_images"] == 200 and prov["groups"] == summary["groups"]
    sizes = np.bincount(reference)
    assert f"holds {sizes.max()} of 712 images" in result.stderr and "provenance joined groups into it" in result.stderr
    print(f"\n[{' '.join(group_by) or 'no --group-by'}] groups {prov['groups_without_provenance']} -> "
          f"{prov['groups']} (provenance joined {prov['groups_joined']} into {prov['joined_into']}); largest group "
          f"{sizes.max()} of 712; validation images per fold {summary['val_images']}; largest class-share "
          f"deviation, points: " + ", ".join(f"{m} {100 * v:.2f}" for m, v in summary["max_abs_dev"].items()))
    check = runner.invoke(app, ["folds", "check", "--folds", str(out / "folds.parquet"), "--ann",
                                str(merged / "annotations.json"), "--no-progress"], terminal_width=400)
    assert check.exit_code == 0, check.output
    assert "no leakage found" in check.stdout


def test_ignoring_provenance_leaks_and_check_names_the_pairs(merged: Path, tmp_path: Path) -> None:
    coco = json.loads((merged / "annotations.json").read_text())
    out = tmp_path / "folds"
    result = runner.invoke(app, ["folds", "--data", str(merged), "--k", "5", "--seed", "42", "--out", str(out),
                                 "--group-by", REGEX, "--ignore-provenance", "--workers", "2", "--no-progress"],
                           terminal_width=400)
    assert result.exit_code == 0, result.output
    assert "warning: provenance ignored: 200 derived image(s)" in result.stderr
    expected = crossing(coco, fold_map(out))
    check = runner.invoke(app, ["folds", "check", "--folds", str(out / "folds.parquet"), "--ann",
                                str(merged / "annotations.json"), "--no-progress"], terminal_width=400)
    assert check.exit_code == 1
    leaks = [line for line in check.stdout.splitlines() if line.startswith("leak provenance: ")]
    assert len(leaks) == len(expected) > 400  # about 4 of 5 of the 800 mosaic-source pairs
    assert all("is a mosaic of id" in line for line in leaks)
    summary = json.loads((out / "summary.json").read_text())
    table = pd.read_parquet(out / "folds.parquet")
    print(f"\n[--ignore-provenance, regex] groups {summary['groups']}; validation images per fold "
          f"{table['fold'].value_counts().sort_index().tolist()}; largest class-share deviation, points: "
          + ", ".join(f"{m} {100 * v:.2f}" for m, v in summary["max_abs_dev"].items())
          + f"; {len(leaks)} provenance pairs leak")

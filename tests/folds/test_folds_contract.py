"""The folds-table contract (issue 11 item 1): every data command that reads ``--folds`` refuses a table made for
another dataset, and one covering only part of the dataset unless ``--partial-folds``; one line, exit 2, nothing
written. The trainer's readers are tested in ``tests/train/test_folds_contract_train.py``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste"
TRAIN, VALID = EXAMPLE / "train", EXAMPLE / "valid"
ANN = TRAIN / "_annotations.coco.json"
runner = CliRunner()


def _folds(ann: Path, out: Path) -> Path:
    result = runner.invoke(app, ["folds", "--ann", str(ann), "--k", "3", "--out", str(out), "--no-progress"])
    assert result.exit_code == 0, result.output
    return out / "folds.parquet"


@pytest.fixture(scope="module")
def tables(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folds tables made by ``datatools folds``: of the train split, of the valid split (another dataset), of
    the first 30 train images (part of it), and of train with the images' ids shuffled (another dataset whose
    ids are all known)."""
    root = tmp_path_factory.mktemp("tables")
    coco = json.loads(ANN.read_text())
    kept = {img["id"] for img in coco["images"][:30]}
    part = {**coco, "images": coco["images"][:30],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in kept]}
    (root / "part.json").write_text(json.dumps(part))
    own = _folds(ANN, root / "own")
    renamed = pd.read_parquet(own)
    renamed["file_name"] = renamed["file_name"].tolist()[1:] + renamed["file_name"].tolist()[:1]
    renamed.to_parquet(root / "renamed.parquet")
    return {"own": own, "other": _folds(VALID / "_annotations.coco.json", root / "other"),
            "part": _folds(root / "part.json", root / "part"), "renamed": root / "renamed.parquet"}


def _commands(table: Path, out: Path) -> dict[str, list[str]]:
    src = ["--ann", str(ANN), "--images", str(TRAIN)]
    return {
        "eda": ["eda", *src, "--no-images", "--folds", str(table), "--out", str(out), "--no-progress"],
        "folds check": ["folds", "check", "--folds", str(table), "--ann", str(ANN), "--no-progress"],
        "augment": ["augment", "flip", *src, "--folds", str(table), "--fold", "0", "--out", str(out),
                    "--no-progress", "--workers", "1"],
    }


def _refused(args: list[str], out: Path, expected: str) -> None:
    result = runner.invoke(app, args)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2, (args, result.output)
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert "Traceback" not in result.output
    assert not out.exists(), "nothing is written"


@pytest.mark.parametrize("command", ["eda", "folds check", "augment"])
@pytest.mark.parametrize("kind", ["other", "renamed"])
def test_a_table_of_another_dataset_is_refused(tables: dict[str, Path], tmp_path: Path, command: str,
                                               kind: str) -> None:
    out = tmp_path / "out"
    _refused(_commands(tables[kind], out)[command], out, "the folds table was made for another dataset")


@pytest.mark.parametrize("command", ["eda", "folds check", "augment"])
def test_a_partial_table_needs_partial_folds(tables: dict[str, Path], tmp_path: Path, command: str) -> None:
    out = tmp_path / "out"
    args = _commands(tables["part"], out)[command]
    _refused(args, out, "covers only part of the dataset: 15 of the 45 images")
    assert "--partial-folds" in runner.invoke(app, args).stderr
    result = runner.invoke(app, [*args, "--partial-folds"])
    assert result.exit_code == 0, result.output


def test_eda_with_partial_folds_counts_only_the_listed_images(tables: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "eda"
    args = _commands(tables["part"], out)["eda"]
    assert runner.invoke(app, [*args, "--partial-folds"]).exit_code == 0
    folds = json.loads((out / "summary.json").read_text())["folds"]
    assert sum(folds["images_per_fold"]) == 30 and folds["unassigned_images"] == 15


def test_the_own_table_is_accepted_everywhere(tables: dict[str, Path], tmp_path: Path) -> None:
    for command, args in _commands(tables["own"], tmp_path / "out").items():
        result = runner.invoke(app, args)
        assert result.exit_code == 0, (command, result.output)
        shutil.rmtree(tmp_path / "out", ignore_errors=True)


def test_folds_check_with_the_images_of_another_dataset_is_one_line(tables: dict[str, Path]) -> None:
    """It crashed with a FileNotFoundError traceback and exit 1 (the 'leak found' code)."""
    result = runner.invoke(app, ["folds", "check", "--folds", str(tables["other"]), "--images", str(TRAIN),
                                 "--no-progress", "--workers", "1"])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "15 of the 15 images of the folds table" in result.stderr and "are not there" in result.stderr

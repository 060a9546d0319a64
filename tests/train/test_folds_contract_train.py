"""The folds-table contract in the trainer (issue 11 item 1): ``train fit``, ``evaluate`` and ``soup`` refuse a
table of another dataset and a partial one without ``--partial-folds`` (fit trained on 34 of 512 images and
exited 0); with ``--partial-folds`` fit trains on the listed images only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from tiny_shapes import write_dataset  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402

pytestmark = pytest.mark.train
runner = CliRunner()
FAST = ["--encoder", "resnet18", "--weights", "none", "--size", "64", "--batch", "4", "--workers", "0",
        "--no-progress", "--epochs", "1"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("contract")
    data = write_dataset(root / "data", 12, multilabel=False)
    other = write_dataset(root / "other", 8, multilabel=False, seed=3)
    other_coco = json.loads((other / "annotations.json").read_text())
    for img in other_coco["images"]:  # the same ids, other files
        new = str(Path(img["file_name"]).with_name("other_" + Path(img["file_name"]).name))
        (other / "images" / img["file_name"]).rename(other / "images" / new)
        img["file_name"] = new
    (other / "annotations.json").write_text(json.dumps(other_coco))
    coco = json.loads((data / "annotations.json").read_text())
    kept = {img["id"] for img in coco["images"][:8]}
    part = {**coco, "images": coco["images"][:8], "annotations": [a for a in coco["annotations"]
                                                                   if a["image_id"] in kept]}
    (root / "part.json").write_text(json.dumps(part))
    tables = {}
    for name, args in {"other": ["--data", str(other)], "part": ["--ann", str(root / "part.json")]}.items():
        result = runner.invoke(app, ["folds", *args, "--k", "2", "--out", str(root / f"folds_{name}"),
                                     "--no-progress"])
        assert result.exit_code == 0, result.output
        tables[name] = root / f"folds_{name}" / "folds.parquet"
    return {"data": data, "other_data": other, **tables}


def _renamed_other(setup: dict[str, Path]) -> bool:
    """The other dataset shares image ids 0..7 with the data but names its files differently."""
    a = json.loads((setup["data"] / "annotations.json").read_text())["images"]
    b = json.loads((setup["other_data"] / "annotations.json").read_text())["images"]
    return {i["id"] for i in b} <= {i["id"] for i in a}


@pytest.mark.parametrize("command", ["fit", "evaluate", "soup"])
@pytest.mark.parametrize(("table", "expected"), [("other", "the folds table was made for another dataset"),
                                                 ("part", "covers only part of the dataset: 4 of the 12 images")])
def test_train_commands_refuse_a_table_that_is_not_the_datasets(setup: dict[str, Path], tmp_path: Path,
                                                                command: str, table: str, expected: str) -> None:
    out = tmp_path / "out"
    args = ["train", command, "--data", str(setup["data"]), "--folds", str(setup[table]), "--fold", "0",
            "--out", str(out)]
    if command == "fit":
        args += FAST
    else:
        args += ["--ckpt", str(tmp_path / "a.pt"), "--ckpt", str(tmp_path / "b.pt"), "--device", "cpu"]
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], result.stderr
    assert not out.exists()


def test_the_other_table_overlaps_the_ids(setup: dict[str, Path]) -> None:
    """The refusal above is not a lucky id mismatch: the other table's ids are all image ids of the data."""
    assert _renamed_other(setup)


def test_fit_with_partial_folds_trains_on_the_listed_images(setup: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "fit", "--data", str(setup["data"]), "--folds", str(setup["part"]),
                                 "--fold", "0", "--partial-folds", "--out", str(out), *FAST])
    assert result.exit_code == 0, result.output
    assert (out / "best.pt").is_file()

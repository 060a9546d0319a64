"""The trainer labels classes with the one display-name helper (issue 11 item 3): two categories named alike
keep two columns in history.csv and two rows in per_class.csv and confusion.csv (they were one column before);
a ``$`` or mathtext name does not break curves.png or confusion.png."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from tiny_shapes import write_dataset  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402

pytestmark = pytest.mark.train
runner = CliRunner()
FAST = ["--encoder", "resnet18", "--weights", "none", "--size", "64", "--batch", "4", "--workers", "0",
        "--no-progress"]


def test_history_per_class_and_confusion_tell_same_named_classes_apart(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "data", 8, multilabel=False)
    coco = json.loads((data / "annotations.json").read_text())
    for cat in coco["categories"]:
        cat["name"] = "facade"
    coco["categories"].append({"id": 40, "name": r"_$\notacommand$", "supercategory": "x"})
    (data / "annotations.json").write_text(json.dumps(coco))
    run, ev = tmp_path / "run", tmp_path / "eval"
    fit = runner.invoke(app, ["train", "fit", "--data", str(data), "--val-data", str(data), "--epochs", "1",
                              "--out", str(run), *FAST])
    assert fit.exit_code == 0, fit.output
    shown = ["facade (id 11)", "facade (id 12)", r"_$\notacommand$"]
    history = pd.read_csv(run / "history.csv")
    assert [c for c in history.columns if c.startswith("miou/")] == [f"miou/{n}" for n in ["background", *shown]]
    assert pd.read_csv(run / "per_class.csv")["class"].tolist() == ["background", *shown, "mean"]
    evaluate = runner.invoke(app, ["train", "evaluate", "--ckpt", str(run / "best.pt"), "--data", str(data),
                                   "--out", str(ev), "--device", "cpu", "--workers", "0", "--no-progress"])
    assert evaluate.exit_code == 0, evaluate.output
    confusion = pd.read_csv(ev / "confusion.csv", index_col=0)
    assert confusion.index.tolist() == ["background", *shown] == confusion.columns.tolist()
    assert (ev / "confusion.png").stat().st_size > 0 and (run / "curves.png").stat().st_size > 0

"""``train evaluate`` with the error breakdown, on a tiny untrained model made in the test (its predictions mix
every kind of error): the breakdown adds up to the confusion matrix, the report and tables are written, --oof
scores each fold with its own checkpoint, and ``train compare`` reads two evaluations."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from tiny_shapes import write_dataset  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools_train.checkpoint import ModelSpec, save_checkpoint  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.model import create_model  # noqa: E402

pytestmark = pytest.mark.train
runner = CliRunner()


def invoke(*args: str) -> str:
    result = runner.invoke(app, ["train", *args, "--workers", "0", "--no-progress"])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result.output


def _model(path: Path, data: Path, mode: Mode, seed: int) -> Path:
    """An untrained Unet (seed 2 of the multiclass one makes every kind of error on these images)."""
    ds = Dataset.from_dir(data)
    classes = tuple(ds.class_map().to_json())
    k = len(classes) - 1 if mode is Mode.MULTILABEL else len(classes)
    torch.manual_seed(seed)
    model = create_model("Unet", "resnet18", classes=k).eval()
    with torch.no_grad():
        model.segmentation_head[0].bias.zero_()
    save_checkpoint(path, ModelSpec("Unet", "resnet18", classes, mode, (0.2, 0.2, 0.2), (0.2, 0.2, 0.2), 64), model)
    return path


@pytest.fixture(scope="module")
def multiclass(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("ev")
    data = write_dataset(root / "ds", 8, multilabel=False)
    ckpt = _model(root / "a.pt", data, Mode.MULTICLASS, 2)
    out = root / "ev_a"
    invoke("evaluate", "--ckpt", str(ckpt), "--data", str(data), "--out", str(out), "--worst", "4")
    return data, ckpt, out


def test_breakdown_equals_the_confusion_matrix_errors(multiclass: tuple[Path, Path, Path]) -> None:
    _, _, out = multiclass
    matrix = pd.read_csv(out / "confusion.csv", index_col=0).to_numpy()
    names = pd.read_csv(out / "confusion.csv", index_col=0).columns.tolist()
    summary = pd.read_csv(out / "error_breakdown.csv").set_index("class")
    assert matrix.sum() - np.trace(matrix) > 0
    kinds = summary[["under_px", "over_px", "confusion_px"]]
    assert (kinds > 0).all().all(), "the test model should make every kind of error"
    for c, name in enumerate(names[1:], start=1):
        expected = matrix[c].sum() - matrix[c, c] + matrix[0, c]
        assert kinds.loc[name].sum() == summary.loc[name, "error_px"] == expected
        assert summary.loc[name, "under_px"] == matrix[c, 0] and summary.loc[name, "over_px"] == matrix[0, c]
    assert kinds.to_numpy().sum() == matrix.sum() - np.trace(matrix)
    # per image rows add up to the totals; confusion with which class matches the matrix
    rows = pd.read_parquet(out / "errors.parquet")
    red = rows[rows["class"] == "red"]
    assert red["confused_as/blue"].sum() == matrix[1, 2]
    assert (red["under_boundary"] + red["under_interior"]).sum() == matrix[1, 0]
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["boundary_iou"]) == {"red", "blue"} and metrics["boundary_px"] == 3


def test_report_objects_and_gallery(multiclass: tuple[Path, Path, Path]) -> None:
    data, _, out = multiclass
    html = (out / "report.html").read_text()
    for text in ("Error breakdown", "Boundary IoU", "Objects found", "Worst images per class", "under-prediction",
                 "confusion (another class)"):
        assert text in html
    assert html.count("data:image/jpeg;base64") >= 2
    objects = pd.read_parquet(out / "objects.parquet")
    ds = Dataset.from_dir(data)
    assert len(objects) == len(ds.annotations) and set(objects["size"]) <= {"small", "medium", "large"}
    assert objects["recalled"].tolist() == (objects["hit"] >= 0.5).tolist()


def test_no_errors_writes_what_evaluate_wrote_before(multiclass: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, ckpt, out = multiclass
    invoke("evaluate", "--ckpt", str(ckpt), "--data", str(data), "--out", str(tmp_path / "plain"), "--no-errors")
    written = {p.name for p in (tmp_path / "plain").iterdir()}
    assert not written & {"errors.parquet", "objects.parquet", "report.html", "error_breakdown.csv"}
    assert (tmp_path / "plain" / "confusion.csv").read_text() == (out / "confusion.csv").read_text()


def test_oof_scores_each_fold_with_its_checkpoint_and_compare(multiclass: tuple[Path, Path, Path],
                                                              tmp_path: Path) -> None:
    data, ckpt_a, out_a = multiclass
    ckpt_b = _model(tmp_path / "b.pt", data, Mode.MULTICLASS, 1)
    ds = Dataset.from_dir(data)
    ids = [img["id"] for img in ds.images]
    folds = tmp_path / "folds.parquet"
    pd.DataFrame({"image_id": ids, "file_name": [img["file_name"] for img in ds.images],
                  "group": [str(i) for i in ids], "fold": [i % 2 for i in range(len(ids))]}).to_parquet(folds)
    oof = tmp_path / "oof"
    invoke("evaluate", "--ckpt", str(ckpt_a), "--ckpt", str(ckpt_b), "--data", str(data), "--folds", str(folds),
           "--oof", "--out", str(oof), "--worst", "0")
    table = pd.read_csv(oof / "folds.csv")
    assert table["fold"].astype(str).tolist() == ["0", "1", "pooled"]
    assert table["images"].tolist() == [4, 4, 8]
    per_image = pd.read_parquet(oof / "per_image.parquet").set_index("image_id")
    single = pd.read_parquet(out_a / "per_image.parquet").set_index("image_id")
    fold0 = [i for k, i in enumerate(ids) if k % 2 == 0]
    # fold 0's images are scored by checkpoint a alone: the same scores as evaluating a on everything
    assert np.allclose(per_image.loc[fold0, "score"], single.loc[fold0, "score"], equal_nan=True)
    assert set(pd.read_parquet(oof / "errors.parquet")["fold"]) == {0, 1}
    # compare: a's evaluation against the out-of-fold one
    cmp = tmp_path / "cmp"
    result = runner.invoke(app, ["train", "compare", str(out_a), str(oof), "--out", str(cmp)])
    assert result.exit_code == 0, result.output
    deltas = pd.read_csv(cmp / "per_class.csv").set_index("class")
    a_iou = pd.read_csv(out_a / "per_class.csv").set_index("class")["iou"]
    b_iou = pd.read_csv(oof / "per_class.csv").set_index("class")["iou"]
    assert np.allclose(deltas.loc["red", "delta_iou_1"], b_iou["red"] - a_iou["red"], atol=1e-4)
    changes = pd.read_csv(cmp / "images.csv")
    fold1 = [i for k, i in enumerate(ids) if k % 2 == 1]
    assert set(changes["image_id"]) == set(ids)
    assert set(changes.loc[changes["delta_1"].abs() > 1e-9, "image_id"]) <= set(fold1)
    assert "improved" in (cmp / "compare.html").read_text()


def test_oof_needs_one_checkpoint_per_fold(multiclass: tuple[Path, Path, Path], tmp_path: Path) -> None:
    data, ckpt, _ = multiclass
    ds = Dataset.from_dir(data)
    folds = tmp_path / "folds.parquet"
    pd.DataFrame({"image_id": [i["id"] for i in ds.images], "file_name": [i["file_name"] for i in ds.images],
                  "group": [str(k) for k in range(len(ds.images))], "fold": [k % 3 for k in range(len(ds.images))]}
                 ).to_parquet(folds)
    result = runner.invoke(app, ["train", "evaluate", "--ckpt", str(ckpt), "--data", str(data), "--folds",
                                 str(folds), "--oof", "--out", str(tmp_path / "x"), "--no-progress"])
    assert result.exit_code == 2 and "one checkpoint per fold: 3 folds" in result.output
    assert not (tmp_path / "x").exists()
    result = runner.invoke(app, ["train", "evaluate", "--ckpt", str(ckpt), "--data", str(data), "--oof", "--out",
                                 str(tmp_path / "y")])
    assert result.exit_code == 2 and "--oof needs --folds" in result.output


def test_multilabel_breakdown_is_fn_fp_per_plane(tmp_path: Path) -> None:
    data = write_dataset(tmp_path / "ml", 4, multilabel=True)
    ckpt = _model(tmp_path / "m.pt", data, Mode.MULTILABEL, 0)
    invoke("evaluate", "--ckpt", str(ckpt), "--data", str(data), "--out", str(tmp_path / "ev"), "--worst", "2")
    stats = pd.read_csv(tmp_path / "ev" / "confusion.csv").set_index("class")
    summary = pd.read_csv(tmp_path / "ev" / "error_breakdown.csv").set_index("class")
    for name in stats.index:
        assert summary.loc[name, "under_px"] == stats.loc[name, "fn"]
        assert summary.loc[name, "over_px"] == stats.loc[name, "fp"]
        assert summary.loc[name, "confusion_px"] == 0
    assert "confused_most_as" not in summary.columns

"""Outlier images in a model's encoder feature space (``clean --ckpt``): kNN distances against a brute-force
reference, and a hand-made dataset whose odd images get the top scores through the real CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from clean_builders import CATEGORIES, smooth_image, write_dataset
from typer.testing import CliRunner

from datatools.clean.encoder_outliers import knn_distances
from datatools.cli.main import app

runner = CliRunner()


def test_knn_distance_is_the_kth_nearest_other_row_after_centring_and_unit_scaling() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 7))
    x[5] = x[4]  # an exact copy: its nearest other row is at distance 0, not itself
    centred = x - x.mean(axis=0)
    unit = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    d = np.linalg.norm(unit[:, None] - unit[None], axis=2)
    np.fill_diagonal(d, np.inf)
    for k in (1, 3):
        np.testing.assert_allclose(knn_distances(x, k=k), np.sort(d, axis=1)[:, k - 1], atol=1e-9)
    assert knn_distances(x, k=1)[4] == pytest.approx(0.0, abs=1e-9)
    small = x[:3] - x[:3].mean(axis=0)
    small /= np.linalg.norm(small, axis=1, keepdims=True)
    d3 = np.linalg.norm(small[:, None] - small[None], axis=2)
    np.testing.assert_allclose(knn_distances(x[:3], k=10), np.sort(d3, axis=1)[:, 2], atol=1e-9)  # k capped at 2


@pytest.fixture(scope="module")
def odd_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """20 photos (two smooth scenes, each shot ten times with other light and sensor noise) and 2 odd images
    (pixel noise, stripes), plus an untrained Unet/resnet18 at 64 px."""
    pytest.importorskip("segmentation_models_pytorch")
    from datatools_train.checkpoint import ModelSpec, save_checkpoint
    from datatools_train.config import Mode
    from datatools_train.model import create_model

    folder = tmp_path_factory.mktemp("odd")
    rng = np.random.default_rng(3)
    scenes = [smooth_image(rng).astype(np.float64) for _ in range(2)]
    images = [(f"s{i:02d}.png", (scenes[i % 2] * rng.uniform(0.97, 1.03) + rng.normal(0, 2, (64, 64, 3)))
               .clip(0, 255).astype(np.uint8)) for i in range(20)]
    noise = rng.integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    stripes = np.zeros((64, 64, 3), np.uint8)
    stripes[::4] = stripes[1::4] = 255
    images[7:7] = [("noise.png", noise)]
    images[15:15] = [("stripes.png", stripes)]
    write_dataset(folder / "ds", images, [])
    classes = tuple({"value": v, "category_id": c, "name": n, "color": [v, v, v]}
                    for v, c, n in [(0, None, "background")] + [(i + 1, c["id"], c["name"])
                                                                 for i, c in enumerate(CATEGORIES)])
    spec = ModelSpec("Unet", "resnet18", classes, Mode.MULTICLASS, (0.5,) * 3, (0.25,) * 3, 64)
    import torch

    torch.manual_seed(0)
    save_checkpoint(folder / "m.pt", spec, create_model("Unet", "resnet18", classes=len(classes), weights=None))
    return folder / "ds", folder / "m.pt"


def test_ckpt_flags_the_images_unlike_the_rest(odd_dataset: tuple[Path, Path], tmp_path: Path) -> None:
    data, ckpt = odd_dataset
    result = runner.invoke(app, ["clean", "--data", str(data), "--ckpt", str(ckpt), "--checks", "outliers",
                                 "--device", "cpu", "--workers", "1", "--gallery", "2", "--out", str(tmp_path / "o"),
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    table = pd.read_parquet(tmp_path / "o" / "images.parquet")
    ranked = table.sort_values("knn_distance", ascending=False)["file_name"].tolist()
    assert set(ranked[:2]) == {"noise.png", "stripes.png"}
    findings = pd.read_parquet(tmp_path / "o" / "findings.parquet")
    flagged = findings[findings["kind"] == "outlier-feature"]
    assert set(flagged["file_name"]) == {"noise.png", "stripes.png"}
    assert (flagged["code"] == "encoder-knn").all()
    assert "outlier-feature" in (tmp_path / "o" / "report.html").read_text(encoding="utf-8")
    # without --ckpt there is no feature score and no such finding
    result = runner.invoke(app, ["clean", "--data", str(data), "--checks", "outliers", "--workers", "1",
                                 "--out", str(tmp_path / "plain"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "knn_distance" not in pd.read_parquet(tmp_path / "plain" / "images.parquet").columns


def test_ckpt_refusals(odd_dataset: tuple[Path, Path], tmp_path: Path) -> None:
    data, ckpt = odd_dataset
    for args, says in ((["--ckpt", str(tmp_path / "missing.pt")], "missing.pt: checkpoint not found"),
                       (["--ckpt", str(ckpt), "--checks", "labels"], "--checks labels needs --probs DIR or --ckpt")):
        result = runner.invoke(app, ["clean", "--data", str(data), "--out", str(tmp_path / "o"), *args])
        assert result.exit_code == 2, result.output
        assert says in result.output
        assert not (tmp_path / "o").exists()

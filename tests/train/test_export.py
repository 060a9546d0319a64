"""``datatools train export``: ONNX (onnxruntime, CPU) and TorchScript logits equal PyTorch's within 1e-4 on the
example images, and model.json records the normalisation and the class names."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools.core.imageio import read_image  # noqa: E402
from datatools_train.checkpoint import ModelSpec, load_checkpoint, model_from_checkpoint, save_checkpoint  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.export import run_exported  # noqa: E402
from datatools_train.model import create_model  # noqa: E402

EXAMPLES = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"
runner = CliRunner()
SIDE = 64


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint of an untrained Unet/resnet18 (equality needs no training) with dataset-like normalisation."""
    ds = Dataset.load(EXAMPLES / "_annotations.coco.json", EXAMPLES)
    torch.manual_seed(0)
    spec = ModelSpec("Unet", "resnet18", tuple(ds.class_map().to_json()), Mode.MULTICLASS, (0.5, 0.47, 0.42),
                     (0.24, 0.25, 0.26), SIDE)
    model = create_model(spec.arch, spec.encoder, classes=spec.num_outputs, weights=None)
    path = tmp_path_factory.mktemp("export") / "best.pt"
    save_checkpoint(path, spec, model.eval(), epoch=1)
    return path


def _example_batch(spec: ModelSpec) -> np.ndarray:
    """The example images, resized to the side and normalised as model.json says."""
    import cv2

    images = []
    for p in sorted(EXAMPLES.glob("*.jpg"))[:4]:
        x = cv2.resize(read_image(p), (SIDE, SIDE), interpolation=cv2.INTER_AREA).astype(np.float32) / 255
        images.append(((x - np.float32(spec.mean)) / np.float32(spec.std)).transpose(2, 0, 1))
    return np.stack(images).astype(np.float32)


@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_equals_pytorch_on_the_example_images(ckpt: Path, tmp_path: Path, fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxruntime")
        pytest.importorskip("onnx")
    out = tmp_path / fmt
    result = runner.invoke(app, ["train", "export", "--ckpt", str(ckpt), "--format", fmt, "--out", str(out)])
    assert result.exit_code == 0, result.output
    meta = json.loads((out / "model.json").read_text())
    model, spec = model_from_checkpoint(load_checkpoint(ckpt))
    assert meta["input"]["mean"] == list(spec.mean) and meta["input"]["std"] == list(spec.std)
    assert meta["classes"] == list(spec.names) and meta["size"] == SIDE
    assert meta["max_abs_diff_vs_pytorch"] < 1e-4
    x = _example_batch(spec)
    with torch.inference_mode():
        reference = model(torch.from_numpy(x)).numpy()
    got = run_exported(out / meta["file"], x)
    assert got.shape == reference.shape == (len(x), spec.num_outputs, SIDE, SIDE)
    assert np.abs(got - reference).max() < 1e-4


def test_export_refuses_a_bad_side(ckpt: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "export", "--ckpt", str(ckpt), "--size", "70", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "multiple of 32" in result.stderr and not (tmp_path / "x").exists()

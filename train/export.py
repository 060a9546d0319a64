"""``datatools train export``: a checkpoint as ONNX or TorchScript, with what a user needs beside it.

The exported graph maps a normalised batch ``(N, 3, S, S)`` float32 to logits ``(N, C, S, S)``, exactly as the
PyTorch model does (``N`` is dynamic). ``model.json`` beside it records the input recipe (RGB scaled to 0..1,
minus ``mean``, over ``std``: the checkpoint's normalisation), the side, the mode (softmax over ``C`` with background
first, or one sigmoid per class), the class names, and the largest difference from the PyTorch logits measured on a
seeded random batch (ONNX: through onnxruntime on CPU, when it is installed; ``pip install 'datatools[export]'``).
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np

from datatools.core.atomic import output_dir
from datatools.core.errors import DatatoolsError

from .checkpoint import ModelSpec, load_checkpoint, model_from_checkpoint

__all__ = ["ExportFormat", "ExportResult", "export", "run_exported"]

#: ONNX opset written (onnxruntime 1.16+ reads it).
OPSET = 17


class ExportFormat(str, Enum):
    ONNX = "onnx"
    TORCHSCRIPT = "torchscript"


FILE_NAMES = {ExportFormat.ONNX: "model.onnx", ExportFormat.TORCHSCRIPT: "model.ts"}


@dataclass(frozen=True)
class ExportResult:
    """Where the model went and how far its logits are from PyTorch's (None: not checked, no onnxruntime)."""

    model: Path
    max_abs_diff: float | None


def run_exported(path: str | os.PathLike[str], x: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    """Logits of an exported model (``model.onnx`` through onnxruntime on CPU, ``model.ts`` through torch.jit)
    for a normalised float32 batch.

    Raises:
        ImportError: ONNX without onnxruntime.
    """
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return np.asarray(session.run(None, {session.get_inputs()[0].name: x.astype(np.float32)})[0])
    import torch

    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export; the files still load
        warnings.simplefilter("ignore", FutureWarning)
        module = torch.jit.load(str(path), map_location="cpu")
    with torch.inference_mode():
        return np.asarray(module(torch.from_numpy(x.astype(np.float32))).numpy())


def _write(model: Any, fmt: ExportFormat, example: Any, path: Path) -> None:
    import torch

    with warnings.catch_warnings():  # the exporters' tracer and deprecation warnings say nothing to act on
        warnings.simplefilter("ignore")
        if fmt is ExportFormat.TORCHSCRIPT:
            with torch.inference_mode(False), torch.no_grad():
                torch.jit.trace(model, example, check_trace=False).save(str(path))
        else:
            torch.onnx.export(model, (example,), str(path), input_names=["image"], output_names=["logits"],
                              dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)


def _recipe(spec: ModelSpec, fmt: ExportFormat, size: int, diff: float | None) -> dict[str, Any]:
    return {
        "format": fmt.value, "file": FILE_NAMES[fmt], "arch": spec.arch, "encoder": spec.encoder,
        "input": {"name": "image", "shape": ["batch", 3, size, size], "dtype": "float32", "channels": "RGB",
                  "scale": "pixel / 255", "mean": list(spec.mean), "std": list(spec.std),
                  "recipe": "(pixel / 255 - mean) / std, per channel, image resized to size x size"},
        "output": {"name": "logits", "shape": ["batch", spec.num_outputs, size, size],
                   "activation": "sigmoid per class" if spec.mode.value == "multilabel" else "softmax over classes"},
        "mode": spec.mode.value, "size": size, "classes": list(spec.names),
        "max_abs_diff_vs_pytorch": diff,
    }


def export(ckpt: str | os.PathLike[str], out: str | os.PathLike[str], fmt: ExportFormat | str, *,
           size: int | None = None, overwrite: bool = False) -> ExportResult:
    """Export a checkpoint to ``out/model.onnx`` or ``out/model.ts`` with ``model.json`` and ``classes.json``.

    Args:
        ckpt: a ``best.pt`` of ``datatools train fit``.
        out: output folder (written atomically).
        fmt: ``onnx`` or ``torchscript``.
        size: input side (a multiple of 32; default the training side).
        overwrite: replace a non-empty ``out``.

    Raises:
        DatatoolsError: a side that is not a positive multiple of 32.

    Example:
        >>> export("runs/a/best.pt", "export/", "onnx").max_abs_diff
        3.1e-06
    """
    import torch

    fmt = ExportFormat(fmt)
    state = load_checkpoint(ckpt)
    model, spec = model_from_checkpoint(state)
    side = int(size or spec.size)
    if side < 32 or side % 32:
        raise DatatoolsError(f"--size must be a positive multiple of 32, got {side}")
    gen = torch.Generator().manual_seed(0)
    example = torch.randn(2, 3, side, side, generator=gen)
    with torch.inference_mode():
        reference = model(example).numpy()
    with output_dir(out, overwrite) as tmp:
        path = tmp / FILE_NAMES[fmt]
        _write(model, fmt, example[:1].clone(), path)
        try:
            diff: float | None = float(np.abs(run_exported(path, example.numpy()) - reference).max())
        except ImportError:
            diff = None
        (tmp / "model.json").write_text(json.dumps(_recipe(spec, fmt, side, diff), indent=2) + "\n",
                                        encoding="utf-8")
        (tmp / "classes.json").write_text(json.dumps(list(spec.classes), indent=1) + "\n", encoding="utf-8")
    return ExportResult(Path(out) / FILE_NAMES[fmt], diff)

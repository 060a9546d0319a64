"""``datatools train compare`` and ``train export``: commands on the files finished runs wrote (evaluation
folders, a checkpoint); they read no dataset. Registered on the ``train`` app in :mod:`train.cli`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.cli._common import OutOpt, OverwriteOpt, fail, handle_errors, size_callback

from .export import ExportFormat
from .options import square_side


@handle_errors
def compare_cmd(
    evals: Annotated[list[Path], typer.Argument(metavar="EVAL_DIR...", help="Folders written by train evaluate; "
                                                "the first is the reference.", show_default=False)],
    out: OutOpt,
    top: Annotated[int, typer.Option("--top", min=1, help="Images listed as improved and as regressed.")] = 8,
    overwrite: OverwriteOpt = False,
) -> None:
    """Per-class deltas of two or more evaluations and the images that improved or regressed most.

    Example:

        datatools train compare eval_a/ eval_b/ --out cmp/
    """
    from .compare import compare

    result = compare(evals, out, top=top, overwrite=overwrite)
    typer.echo(result.table())
    typer.echo(f"{len(result.images)} images compared; written to {out}")


@handle_errors
def export_cmd(
    ckpt: Annotated[Path, typer.Option("--ckpt", exists=True, dir_okay=False, help="Checkpoint (best.pt).")],
    out: OutOpt,
    fmt: Annotated[ExportFormat, typer.Option("--format", help="onnx (onnxruntime) or torchscript.")]
    = ExportFormat.ONNX,
    size: Annotated[str | None, typer.Option("--size", callback=size_callback, metavar="N", help="Input side (a "
                                             "multiple of 32).", show_default="the training side")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Export a checkpoint as ONNX or TorchScript, with model.json (normalisation, side, classes) beside it.

    The model takes (N, 3, S, S) float32 images normalised as model.json says and returns logits; model.json
    also gives the largest difference from the PyTorch logits, measured on a random batch.

    Example:

        datatools train export --ckpt runs/a/best.pt --format onnx --out onnx/
    """
    from .export import export

    side = square_side(size) if size else None
    if side is not None and side % 32:
        raise fail(f"--size must be a multiple of 32, got {side}")
    result = export(ckpt, out, fmt, size=side, overwrite=overwrite)
    diff = "not checked (pip install 'datatools[export]' for onnxruntime)" if result.max_abs_diff is None \
        else f"{result.max_abs_diff:.2e}"
    typer.echo(f"wrote {result.model} and model.json; largest difference from the PyTorch logits {diff}")

"""Option types and value checks of ``datatools train`` (the parsers run before any work; no torch here)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.cli._common import parse_size_hw

from .predict import ProbsDtype
from .sliding import Blend
from .tta import TTA

FoldsOpt = Annotated[Path | None, typer.Option("--folds", help="folds.parquet (datatools folds).", show_default=False)]
FoldOpt = Annotated[int, typer.Option("--fold", help="Validation fold of --folds; the others train.")]
ValAnnOpt = Annotated[Path | None, typer.Option("--val-ann", help="Validation COCO json.", show_default=False)]
ValImagesOpt = Annotated[Path | None, typer.Option("--val-images", help="Validation image root.", show_default=False)]
ValDataOpt = Annotated[Path | None, typer.Option("--val-data", help="Validation dataset folder.", show_default=False)]


def check_tta(value: str | None) -> str | None:
    try:
        TTA.parse(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def check_thresholds(value: str | None) -> str | None:
    """The form of --thresholds; its count is checked against the model's classes when the checkpoint is read."""
    if value is None or value == "auto" or value.endswith(".json") or Path(value).is_file():
        return value
    try:
        numbers = [float(v) for v in value.split(",")]
    except ValueError:
        raise typer.BadParameter(f"expected auto, a number, one number per class or a thresholds.json, got {value!r}")\
            from None
    if not all(0 < v < 1 for v in numbers):
        raise typer.BadParameter(f"every threshold must lie in (0, 1), got {value!r}")
    return value


WEIGHT_FILE_SUFFIXES = (".pt", ".pth", ".bin", ".safetensors", ".ckpt")


def check_weights(value: str) -> str:
    """imagenet, none (or another smp weights name), or a file: a value that looks like a path must exist."""
    looks_like_path = "/" in value or "\\" in value or value.lower().endswith(WEIGHT_FILE_SUFFIXES)
    if looks_like_path and not Path(value).is_file():
        raise typer.BadParameter(f"{value}: weights file not found (or give imagenet or none)")
    return value


def check_normalize(value: str) -> str:
    from .normalization import parse_normalize

    try:
        parse_normalize(value)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    return value


def check_share(value: float | None) -> float | None:
    if value is not None and not 0 < value <= 1:
        raise typer.BadParameter(f"an image share in (0, 1], got {value:g}")
    return value


def check_patience(value: int | None) -> int | None:
    if value is not None and value < 1:
        raise typer.BadParameter(f"epochs without improvement, at least 1, got {value}")
    return value


def check_crop(value: int | None) -> int | None:
    if value is not None and (value < 32 or value % 32):
        raise typer.BadParameter(f"a crop side, a positive multiple of 32, got {value}")
    return value


def check_probability(value: float) -> float:
    if not 0 <= value <= 1:
        raise typer.BadParameter(f"a probability in [0, 1], got {value:g}")
    return value


def check_class_weights(value: str | None) -> str | None:
    from .class_weights import WEIGHT_RULES

    if value is None or value in WEIGHT_RULES or Path(value).is_file():
        return value
    raise typer.BadParameter(f"expected {', '.join(WEIGHT_RULES)} or a JSON file of weights, got {value!r}")


def square_side(size: str) -> int:
    h, w = parse_size_hw(size)
    if h != w:
        raise typer.BadParameter(f"the trainer works on squares: give one side, got {size!r}", param_hint="--size")
    return h


def all_ckpts(first: list[Path], more: list[Path] | None) -> list[Path]:
    """``--ckpt A --ckpt B`` and ``--ckpt runs/*/best.pt`` (the shell's list after one --ckpt) alike."""
    return [*first, *(more or [])]


CkptsOpt = Annotated[list[Path], typer.Option("--ckpt", help="Checkpoint; repeat --ckpt, or list several after one "
                                              "(--ckpt runs/*/best.pt), for an ensemble.")]
MoreCkptsArg = Annotated[list[Path] | None, typer.Argument(metavar="CKPT...", help="More checkpoints (what a shell "
                                                           "pattern after --ckpt expands to).", show_default=False)]
TtaOpt = Annotated[str | None, typer.Option("--tta", callback=check_tta, help="Test-time views: "
                                            "hflip,vflip,rot90,scale:0.75,1,1.25.", show_default=False)]
BatchOpt = Annotated[int, typer.Option("--batch", min=1, help="Images per batch.")]
LoaderOpt = Annotated[int | None, typer.Option("--workers", min=0, help="DataLoader worker processes.",
                                               show_default="half the cores, at most 8")]
VoteOpt = Annotated[bool, typer.Option("--vote", help="Pixel majority vote of the checkpoints instead of the mean "
                                       "of their probabilities.")]
ThresholdsOpt = Annotated[str | None, typer.Option("--thresholds", callback=check_thresholds,
                                                   help="Multilabel: 0.5, one value per class, a thresholds.json "
                                                   "from evaluate, or auto (searched on the validation set).",
                                                   show_default=False)]


def check_sliding(value: str | None) -> str | None:
    from .sliding import SlidingWindow

    if value is not None:
        try:
            SlidingWindow.parse(value)
        except ValueError as exc:
            raise typer.BadParameter(f"{exc} (in {value!r})") from None
    return value


SlidingOpt = Annotated[str | None, typer.Option("--sliding-window", callback=check_sliding, metavar="TILE[,STRIDE]",
                                                help="Predict full-resolution tiles (a multiple of 32), blended; "
                                                "stride TILE/2 by default.", show_default=False)]
BlendOpt = Annotated[Blend, typer.Option("--blend", help="Tile weights of --sliding-window.")]
CocoOpt = Annotated[bool, typer.Option("--coco", help="Also write coco/: the predictions as a dataset (an RLE per "
                                       "component and class).")]
OverlaysOpt = Annotated[bool, typer.Option("--overlays", help="Also write overlays/<stem>.png: image | prediction, "
                                          "with a legend.")]
SaveProbsOpt = Annotated[bool, typer.Option("--save-probs", help="Also write probs/<file_name stem>.npz per image "
                                            "(for pseudo-label --probs and clean --probs; format above).")]
ProbsDtypeOpt = Annotated[ProbsDtype, typer.Option("--probs-dtype", help="Type of the saved probabilities.")]
SubmissionSizeOpt = Annotated[int, typer.Option("--submission-size", min=1, help="class-ids: side of the square the "
                                                "masks are resized to.")]
PredictImagesOpt = Annotated[Path | None, typer.Option("--images", help="Image folder (alone: every image in it), or "
                                                       "the root of --ann.", show_default=False)]

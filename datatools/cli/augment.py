"""``datatools augment``: offline mosaic, RICAP, copy-paste, flips/rotations and albumentations pipelines.

Every subcommand reads a dataset (optionally only one fold's training images), writes a NEW dataset to --out
(images, COCO annotations as RLE or polygons, provenance per image) and, with --merge, the source images too.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Annotated, Any

import typer

from datatools.augment._records import Segmentation
from datatools.augment.albu import AlbuConfig
from datatools.augment.copy_paste import Blend, CopyPasteConfig
from datatools.augment.geometric import FlipConfig, FlipDirection, RotateConfig
from datatools.augment.mosaic import MosaicConfig
from datatools.augment.ricap import RicapConfig
from datatools.augment.runner import AugmentResult, ImageFormat
from datatools.cli._common import (
    AnnOpt,
    DataOpt,
    EngineOpt,
    ImagesOpt,
    LateralOpt,
    OptionalSizeOpt,
    OutOpt,
    OverwriteOpt,
    PartialFoldsOpt,
    ProgressOpt,
    RareThresholdOpt,
    RetriesOpt,
    SchedulerOpt,
    SeedOpt,
    SkipInvalidOpt,
    WorkersOpt,
    handle_errors,
    open_dataset,
    parse_size_hw,
    with_option_names,
)
from datatools.core.engine import DEFAULT_RETRIES, Engine
from datatools.core.errors import DatatoolsError
from datatools.core.rarity import RARE_THRESHOLD

app = typer.Typer(no_args_is_help=True, help="Make new images offline (mosaic, ricap, copy-paste, flip, rotate, "
                  "albu) and write them as a new dataset, fold-aware.")

FoldsOpt = Annotated[Path | None, typer.Option("--folds", help="folds.parquet from `datatools folds`; with "
                                               "--fold only that fold's training images are used.",
                                               show_default=False)]
FoldOpt = Annotated[int | None, typer.Option("--fold", help="Fold whose validation images must not reach any "
                                             "output.", show_default=False)]
MergeOpt = Annotated[bool, typer.Option("--merge", help="Write the source images and the new ones as one "
                                        "dataset.")]
CountOpt = Annotated[int | None, typer.Option("-n", "--count", min=1, help="Images to make.",
                                              show_default="one per source image (per direction/angle/copy)")]
FormatOpt = Annotated[ImageFormat | None, typer.Option("--format", help="Output image format.",
                                                       show_default="the first source image's")]
QualityOpt = Annotated[int, typer.Option("--quality", min=1, max=100, help="JPEG quality.")]
SegOpt = Annotated[Segmentation, typer.Option("--segmentation", help="rle (exact) or polygon (no holes).")]

PreferOpt = Annotated[str | None, typer.Option("--prefer", help="Favour images holding these classes "
                                               "(NAME,NAME) or the rare ones (auto; see --rare-threshold).",
                                               show_default=False)]


def _default(cls: type[Any], name: str) -> Any:
    """The default of a config field: options take it from the dataclass and never restate it; ranges and lists
    are typed as ``A,B``."""
    value = {f.name: f for f in dataclasses.fields(cls)}[name].default
    if isinstance(value, tuple):
        return ",".join(v.value if hasattr(v, "value") else f"{v:g}" for v in value)
    return value


class _D:
    """Option defaults, read once from the config dataclasses."""

    grid = _default(MosaicConfig, "grid_hw").replace(",", "x")
    center_range = _default(MosaicConfig, "center_range")
    mosaic_min_area = _default(MosaicConfig, "min_area")
    beta = _default(RicapConfig, "beta")
    ricap_min_area = _default(RicapConfig, "min_area")
    objects_range = _default(CopyPasteConfig, "objects_range")
    scale_range = _default(CopyPasteConfig, "scale_range")
    flip_prob = _default(CopyPasteConfig, "flip_prob")
    paste_angle_range = _default(CopyPasteConfig, "angle_range")
    blend = _default(CopyPasteConfig, "blend")
    sigma = _default(CopyPasteConfig, "sigma")
    max_occlusion = _default(CopyPasteConfig, "max_occlusion")
    min_visible = _default(CopyPasteConfig, "min_visible")
    paste_min_area = _default(CopyPasteConfig, "min_area")
    directions = _default(FlipConfig, "directions")
    angles = _default(RotateConfig, "angles")
    expand = _default(RotateConfig, "expand")
    fill = _default(RotateConfig, "fill")
    rotate_min_area = _default(RotateConfig, "min_area")
    copies = _default(AlbuConfig, "copies")
    albu_min_area = _default(AlbuConfig, "min_area")


def _floats(value: str | None, what: str, n: int | None = 2) -> tuple[float, ...] | None:
    if value is None:
        return None
    try:
        out = tuple(float(v) for v in value.split(",") if v.strip())
    except ValueError:
        raise typer.BadParameter(f"{what} must be numbers separated by commas, got {value!r}") from None
    if n is not None and len(out) != n:
        raise typer.BadParameter(f"{what} must be {n} numbers separated by a comma, got {value!r}")
    return out


def _config(cls: type[Any], **kwargs: Any) -> Any:
    try:
        return cls(**{k: v for k, v in kwargs.items() if v is not None})
    except ValueError as exc:
        raise DatatoolsError(with_option_names(str(exc))) from None


def _run(op: str, config: Any, ann: Path | None, images: Path | None, data: Path | None, out: Path,
         common: dict[str, Any]) -> None:
    from datatools.augment.runner import run_augment

    skip_invalid, workers, progress = common.pop("skip_invalid"), common["workers"], common["progress"]
    ds = open_dataset(ann, images, data, skip_invalid=skip_invalid, workers=workers, progress=progress)
    result = run_augment(ds, out, op, config, **common)
    _report(result)


def _report(result: AugmentResult) -> None:
    if result.rare is not None:
        absent = f"; absent (no source image holds them): {', '.join(result.absent)}" if result.absent else ""
        typer.echo(f"rare classes ({result.rare_rule}): {', '.join(result.rare) or 'none'}{absent}")
    merged = f" plus {result.merged_images} source images" if result.merged_images else ""
    typer.echo(f"wrote {result.images} new images ({result.annotations} annotations){merged} from "
               f"{result.sources} source images to {result.out}")
    for name, before in result.shares_before.items():
        typer.echo(f"  {name}: image share {before:.1%} -> {result.shares_after.get(name, 0.0):.1%}")
    for line in result.lateral_pairs:
        typer.echo(f"  lateral pair: {line}")
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if result.inexact_polygons:
        typer.echo(f"warning: {result.inexact_polygons} masks have holes that polygons cannot hold "
                   "(use --segmentation rle for exact masks)", err=True)


def _common(count: int | None, seed: int, workers: int | None, folds: Path | None, fold: int | None,
            partial_folds: bool, merge: bool, fmt: ImageFormat | None, quality: int, segmentation: Segmentation,
            overwrite: bool, progress: bool, skip_invalid: bool) -> dict[str, Any]:
    return {"count": count, "seed": seed, "workers": workers, "folds": folds, "fold": fold,
            "partial_folds": partial_folds, "merge": merge,
            "image_format": fmt, "quality": quality, "segmentation": segmentation, "overwrite": overwrite,
            "progress": progress, "skip_invalid": skip_invalid}


@app.command("mosaic")
@handle_errors
def mosaic(
    out: OutOpt, ann: AnnOpt = None, images: ImagesOpt = None, data: DataOpt = None,
    grid: Annotated[str, typer.Option("--grid", help="Tiles per column x per row: 2x2 or 3x3.")] = _D.grid,
    size: OptionalSizeOpt = None,
    center_range: Annotated[str, typer.Option("--center-range", help="Range of the grid centre, fraction of the "
                                              "output size.")] = _D.center_range,
    min_area: Annotated[int, typer.Option("--min-area", help="Objects under this many pixels after the cut "
                                          "are dropped.")] = _D.mosaic_min_area,
    prefer: PreferOpt = None, rare_threshold: RareThresholdOpt = RARE_THRESHOLD,
    count: CountOpt = None, seed: SeedOpt = 0, workers: WorkersOpt = None, folds: FoldsOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    fold: FoldOpt = None, partial_folds: PartialFoldsOpt = False, merge: MergeOpt = False, fmt: FormatOpt = None,
    quality: QualityOpt = 95,
    segmentation: SegOpt = Segmentation.RLE, overwrite: OverwriteOpt = False, progress: ProgressOpt = True,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Mosaic: a grid of tiles from different images around a random centre, annotations cut consistently.

    Example:

        datatools augment mosaic --data train/ --out aug/ --grid 2x2 --size 640 \\
            -n 500 --prefer auto --seed 0
    """
    try:
        gy, gx = (int(v) for v in grid.lower().split("x"))
    except ValueError:
        raise typer.BadParameter(f"--grid must be like 2x2 or 3x3, got {grid!r}") from None
    config = _config(MosaicConfig, grid_hw=(gy, gx), size_hw=parse_size_hw(size) if size else None,
                     center_range=_floats(center_range, "--center-range"), min_area=min_area, prefer=prefer,
                     rare_threshold=rare_threshold)
    common = _common(count, seed, workers, folds, fold, partial_folds, merge, fmt, quality, segmentation,
                     overwrite, progress, skip_invalid)
    _run("mosaic", config, ann, images, data, out, common)


@app.command("ricap")
@handle_errors
def ricap(
    out: OutOpt, ann: AnnOpt = None, images: ImagesOpt = None, data: DataOpt = None,
    beta: Annotated[float, typer.Option("--beta", help="Beta(b, b) of the split point.")] = _D.beta,
    size: OptionalSizeOpt = None,
    min_area: Annotated[int, typer.Option("--min-area", help="Objects under this many pixels after the cut "
                                          "are dropped.")] = _D.ricap_min_area,
    prefer: PreferOpt = None, rare_threshold: RareThresholdOpt = RARE_THRESHOLD,
    count: CountOpt = None, seed: SeedOpt = 0, workers: WorkersOpt = None, folds: FoldsOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    fold: FoldOpt = None, partial_folds: PartialFoldsOpt = False, merge: MergeOpt = False, fmt: FormatOpt = None,
    quality: QualityOpt = 95,
    segmentation: SegOpt = Segmentation.RLE, overwrite: OverwriteOpt = False, progress: ProgressOpt = True,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """RICAP: four crops of four different images, split at a point drawn from Beta(b, b).

    Example:

        datatools augment ricap --ann train.json --images data/ --out ricap/ \\
            -n 800 --folds folds.parquet --fold 0
    """
    config = _config(RicapConfig, beta=beta, size_hw=parse_size_hw(size) if size else None, min_area=min_area,
                     prefer=prefer, rare_threshold=rare_threshold)
    common = _common(count, seed, workers, folds, fold, partial_folds, merge, fmt, quality, segmentation,
                     overwrite, progress, skip_invalid)
    _run("ricap", config, ann, images, data, out, common)


@app.command("copy-paste")
@handle_errors
def copy_paste(
    out: OutOpt, ann: AnnOpt = None, images: ImagesOpt = None, data: DataOpt = None,
    classes: Annotated[str | None, typer.Option("--classes", help="Classes to paste: NAME,NAME.",
                                                show_default=False)] = None,
    rare: Annotated[str | None, typer.Option("--rare", help="'auto': paste the rare classes (the default).",
                                             show_default=False)] = None,
    rare_threshold: RareThresholdOpt = RARE_THRESHOLD,
    objects_range: Annotated[str, typer.Option("--objects-range", help="Objects pasted per image: MIN,MAX.")]
    = _D.objects_range,
    scale_range: Annotated[str, typer.Option("--scale-range", help="Scale jitter: LOW,HIGH.")] = _D.scale_range,
    flip_prob: Annotated[float, typer.Option("--flip-prob", help="Probability of flipping a pasted object.")]
    = _D.flip_prob,
    angle_range: Annotated[str, typer.Option("--angle-range", help="Rotation of pasted objects, degrees: "
                                             "LOW,HIGH.")] = _D.paste_angle_range,
    blend: Annotated[Blend, typer.Option("--blend", help="Edges of pasted objects.")] = _D.blend,
    sigma: Annotated[float, typer.Option("--sigma", help="Gaussian blend sigma, pixels.")] = _D.sigma,
    max_occlusion: Annotated[float, typer.Option("--max-occlusion", help="A paste covers at most this fraction of "
                                                 "any object already there.")] = _D.max_occlusion,
    min_visible: Annotated[float, typer.Option("--min-visible", help="Objects left with less of their area are "
                                               "dropped.")] = _D.min_visible,
    min_area: Annotated[int, typer.Option("--min-area", help="Objects left under this many pixels are dropped.")]
    = _D.paste_min_area,
    target_share: Annotated[float | None, typer.Option("--target-share", help="Paste until each chosen class is in "
                                                       "this share of the images (sources + new).",
                                                       show_default=False)] = None,
    target_images: Annotated[int | None, typer.Option("--target-images", help="Paste until each chosen class is "
                                                      "in this many images.", show_default=False)] = None,
    count: Annotated[int | None, typer.Option("-n", "--count", min=1, help="Images to make.",
                                              show_default="one per source image; with a target, at most 20 per "
                                              "source image")] = None,
    lateral_pairs: LateralOpt = "auto",
    seed: SeedOpt = 0, workers: WorkersOpt = None, folds: FoldsOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    fold: FoldOpt = None, partial_folds: PartialFoldsOpt = False, merge: MergeOpt = False, fmt: FormatOpt = None,
    quality: QualityOpt = 95,
    segmentation: SegOpt = Segmentation.RLE, overwrite: OverwriteOpt = False, progress: ProgressOpt = True,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Copy-paste: objects of chosen or rare classes cut out with their masks and pasted onto other images.

    Example:

        datatools augment copy-paste --data train/ --out cp/ --rare auto \\
            --target-share 0.5 --merge --seed 0
    """
    if classes and rare:
        raise DatatoolsError("give --classes or --rare auto, not both")
    if rare is not None and rare.strip().lower() != "auto":
        raise DatatoolsError(f"--rare takes 'auto', got {rare!r} (name classes with --classes)")
    lo, hi = _floats(objects_range, "--objects-range") or (1, 3)
    config = _config(CopyPasteConfig, classes=classes or "auto", rare_threshold=rare_threshold,
                     objects_range=(int(lo), int(hi)), scale_range=_floats(scale_range, "--scale-range"),
                     flip_prob=flip_prob, angle_range=_floats(angle_range, "--angle-range"), blend=blend,
                     sigma=sigma, max_occlusion=max_occlusion, min_visible=min_visible, min_area=min_area,
                     target_share=target_share, target_images=target_images)
    common = _common(count, seed, workers, folds, fold, partial_folds, merge, fmt, quality, segmentation,
                     overwrite, progress, skip_invalid)
    common["lateral_pairs"] = lateral_pairs
    _run("copy-paste", config, ann, images, data, out, common)


@app.command("flip")
@handle_errors
def flip(
    out: OutOpt, ann: AnnOpt = None, images: ImagesOpt = None, data: DataOpt = None,
    directions: Annotated[str, typer.Option("--directions", help="h (left-right), v (up-down), hv (both); "
                                            "comma-separated, one output per source and direction.")]
    = _D.directions,
    lateral_pairs: LateralOpt = "auto",
    count: CountOpt = None, seed: SeedOpt = 0, workers: WorkersOpt = None, folds: FoldsOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    fold: FoldOpt = None, partial_folds: PartialFoldsOpt = False, merge: MergeOpt = False, fmt: FormatOpt = None,
    quality: QualityOpt = 95,
    segmentation: SegOpt = Segmentation.RLE, overwrite: OverwriteOpt = False, progress: ProgressOpt = True,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Flip: offline horizontal and vertical flips, labels exact.

    Example:

        datatools augment flip --data xray/ --out flipped/ --directions h,v \\
            --merge --workers 2
    """
    try:
        dirs = tuple(FlipDirection(d.strip()) for d in directions.split(",") if d.strip())
    except ValueError:
        raise typer.BadParameter(f"--directions takes h, v and hv, got {directions!r}") from None
    common = _common(count, seed, workers, folds, fold, partial_folds, merge, fmt, quality, segmentation,
                     overwrite, progress, skip_invalid)
    common["lateral_pairs"] = lateral_pairs
    _run("flip", _config(FlipConfig, directions=dirs), ann, images, data, out, common)


@app.command("rotate")
@handle_errors
def rotate(
    out: OutOpt, ann: AnnOpt = None, images: ImagesOpt = None, data: DataOpt = None,
    angles: Annotated[str, typer.Option("--angles", help="Angles in degrees, counter-clockwise, comma-separated "
                                        "(90,180,270 are exact; e.g. -15,15); one output per source and angle.")]
    = _D.angles,
    angle_range: Annotated[str | None, typer.Option("--angle-range", help="LOW,HIGH: one random angle per output "
                                                    "instead of --angles.", show_default=False)] = None,
    expand: Annotated[bool, typer.Option("--expand", help="Grow the canvas so nothing is cut off.")]
    = _D.expand,
    fill: Annotated[int, typer.Option("--fill", min=0, max=255, help="Grey value of padded corners.")]
    = _D.fill,
    min_area: Annotated[int, typer.Option("--min-area", help="Objects under this many pixels after rotating are "
                                          "dropped.")] = _D.rotate_min_area,
    lateral_pairs: LateralOpt = "auto",
    count: CountOpt = None, seed: SeedOpt = 0, workers: WorkersOpt = None, folds: FoldsOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    fold: FoldOpt = None, partial_folds: PartialFoldsOpt = False, merge: MergeOpt = False, fmt: FormatOpt = None,
    quality: QualityOpt = 95,
    segmentation: SegOpt = Segmentation.RLE, overwrite: OverwriteOpt = False, progress: ProgressOpt = True,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Rotate: 90-degree turns (exact) and any angle, with masks warped alongside and corners padded.

    Example:

        datatools augment rotate --data train/ --out rot/ --angles -15,15 \\
            --fill 0 --merge
    """
    config = _config(RotateConfig, angles=_floats(angles, "--angles", None), expand=expand, fill=fill,
                     angle_range=_floats(angle_range, "--angle-range"), min_area=min_area)
    common = _common(count, seed, workers, folds, fold, partial_folds, merge, fmt, quality, segmentation,
                     overwrite, progress, skip_invalid)
    common["lateral_pairs"] = lateral_pairs
    _run("rotate", config, ann, images, data, out, common)


@app.command("albu")
@handle_errors
def albu(
    out: OutOpt,
    pipeline: Annotated[Path, typer.Option("--pipeline", help="albumentations pipeline saved with A.save "
                                           "(.yaml/.yml or .json).")],
    ann: AnnOpt = None, images: ImagesOpt = None, data: DataOpt = None,
    copies: Annotated[int, typer.Option("--copies", min=1, help="Outputs per source image.")]
    = _D.copies,
    min_area: Annotated[int, typer.Option("--min-area", help="Objects under this many pixels afterwards are "
                                          "dropped.")] = _D.albu_min_area,
    lateral_pairs: LateralOpt = "auto",
    count: CountOpt = None, seed: SeedOpt = 0, workers: WorkersOpt = None, folds: FoldsOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    fold: FoldOpt = None, partial_folds: PartialFoldsOpt = False, merge: MergeOpt = False, fmt: FormatOpt = None,
    quality: QualityOpt = 95,
    segmentation: SegOpt = Segmentation.RLE, overwrite: OverwriteOpt = False, progress: ProgressOpt = True,
    skip_invalid: SkipInvalidOpt = False,
) -> None:
    """Albu: any albumentations pipeline, applied offline with every object's mask transformed alongside.

    Example:

        datatools augment albu --data train/ --out albu/ \\
            --pipeline pipeline.yaml --copies 3 --seed 0
    """
    from datatools.augment.albu import load_pipeline

    config = _config(AlbuConfig, pipeline=load_pipeline(pipeline), copies=copies, min_area=min_area)
    common = _common(count, seed, workers, folds, fold, partial_folds, merge, fmt, quality, segmentation,
                     overwrite, progress, skip_invalid)
    common["lateral_pairs"] = lateral_pairs
    _run("albu", config, ann, images, data, out, common)

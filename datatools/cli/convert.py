"""``datatools convert``: COCO to mask folders and back, per-image polygon JSON, submission CSVs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.cli._common import (
    AnnOpt,
    CrowdOpt,
    DataOpt,
    EngineOpt,
    ImagesOpt,
    MaskFormatOpt,
    OutOpt,
    OverlapOpt,
    OverwriteOpt,
    ProgressOpt,
    RetriesOpt,
    SchedulerOpt,
    SkipInvalidOpt,
    SubmissionStyleOpt,
    WorkersOpt,
    handle_errors,
    open_dataset,
    parse_size_hw,
    size_callback,
)
from datatools.core.classes import ClassMap
from datatools.core.dataset import Dataset
from datatools.core.engine import DEFAULT_RETRIES, Engine
from datatools.core.errors import DatatoolsError
from datatools.core.imageio import MaskFormat
from datatools.core.masks import Crowd
from datatools.core.paths import require_folder
from datatools.formats.mask_dir import ANN_DIR, CLASSES_FILE, IMG_DIR, coco_to_mask_dir, mask_dir_to_coco
from datatools.formats.submission_dir import SubmissionStyle, mask_dir_to_submission, submission_to_mask_dir

app = typer.Typer(no_args_is_help=True, help="Convert datasets between COCO, mask folders, polygon JSON and CSVs.")


@app.command("masks")
@handle_errors
def masks(
    out: OutOpt,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    overlap: OverlapOpt = "smaller-on-top",
    multilabel: Annotated[
        bool, typer.Option("--multilabel", help="Write (K, H, W) bit-packed planes (.npz) for overlapping classes.")
    ] = False,
    crowd: CrowdOpt = Crowd.CLASS,
    copy_images: Annotated[bool, typer.Option("--copy-images/--no-copy-images", help="Copy images to img_dir/.")]
    = True,
    mask_format: MaskFormatOpt = MaskFormat.PALETTE,
    skip_invalid: SkipInvalidOpt = False,
    workers: WorkersOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """COCO -> mask folder in the mmsegmentation layout (img_dir/, ann_dir/, classes.json).

    Example:

        datatools convert masks --ann train.json --images data/ --out masks/ \\
            --overlap class-priority:syringe
    """
    ds = open_dataset(ann, images, data, skip_invalid=skip_invalid, workers=workers, progress=progress)
    result = coco_to_mask_dir(ds, out, overlap=overlap, multilabel=multilabel, crowd=crowd,
                              copy_images=copy_images, mask_format=mask_format, overwrite=overwrite, workers=workers,
                              progress=progress)
    kind = "multilabel planes" if result.multilabel else "masks"
    typer.echo(f"wrote {result.images} {kind} to {result.out / ANN_DIR}, classes to {result.out / CLASSES_FILE}"
               + (f", images to {result.out / IMG_DIR}" if copy_images else ""))


@app.command("coco")
@handle_errors
def coco(
    out: OutOpt,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    reindex: Annotated[bool, typer.Option("--reindex", help="Renumber image, annotation and category ids 1..N.")]
    = False,
    skip_invalid: SkipInvalidOpt = False,
    workers: WorkersOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """COCO -> a datatools dataset folder (annotations.json + images/), every field kept.

    Example:

        datatools convert coco --ann export/_annotations.coco.json \\
            --images export/ --out data/ --reindex
    """
    ds = open_dataset(ann, images, data, skip_invalid=skip_invalid, workers=workers, progress=progress)
    if reindex:
        ds = ds.reindexed()
    ds.save(out, overwrite=overwrite)
    typer.echo(f"wrote {len(ds.images)} images and {len(ds.annotations)} annotations to {out}")


@app.command("from-masks")
@handle_errors
def from_masks(
    masks: Annotated[Path, typer.Option("--masks", help="Mask folder (with ann_dir/ and classes.json) or an "
                                         "ann_dir of PNG/.npz masks.")],
    out: OutOpt,
    images: Annotated[Path | None, typer.Option("--images", help="Image folder.", show_default="MASKS/img_dir")]
    = None,
    classes: Annotated[Path | None, typer.Option("--classes", help="classes.json.", show_default="MASKS/classes.json")]
    = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Mask folder -> datatools dataset folder with one RLE annotation per class per image.

    Example:

        datatools convert from-masks --masks masks/ --out data/
    """
    ann_dir = masks / ANN_DIR if (masks / ANN_DIR).is_dir() else masks
    images = images or masks / IMG_DIR
    classes = classes or masks / CLASSES_FILE
    require_folder(images, hint="(give --images)")
    coco_dict = mask_dir_to_coco(ann_dir, images, ClassMap.load(classes))
    Dataset(coco_dict, images).save(out, overwrite=overwrite)
    typer.echo(f"wrote {len(coco_dict['images'])} images and {len(coco_dict['annotations'])} annotations to {out}")


@app.command("polygon-json")
@handle_errors
def polygon_json(
    labels: Annotated[Path, typer.Option("--labels", help="Tree of per-image polygon JSON files.")],
    images: Annotated[Path, typer.Option("--images", help="Image tree mirrored by --labels.")],
    out: OutOpt,
    classes: Annotated[str | None, typer.Option("--classes", help="Comma-separated class order.",
                                                show_default="order of first appearance")] = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Per-image polygon JSON (hand-bone X-ray style) -> datatools dataset folder (COCO polygons).

    The image's folder (e.g. the patient id) is kept as images[].attributes.folder, for grouped folds.

    Example:

        datatools convert polygon-json --labels train/outputs_json \\
            --images train/DCM --out xray/
    """
    from datatools.formats.polygon_json import polygon_json_to_coco

    names = [c.strip() for c in classes.split(",")] if classes else None
    coco_dict = polygon_json_to_coco(labels, images, names)
    Dataset(coco_dict, images).save(out, overwrite=overwrite)
    typer.echo(f"wrote {len(coco_dict['images'])} images and {len(coco_dict['annotations'])} annotations to {out}")


SideOpt = Annotated[int, typer.Option("--size", min=1, help="class-ids: side of the square the masks are resized to.")]


@app.command("submission")
@handle_errors
def submission(
    masks: Annotated[Path, typer.Option("--masks", help="Mask folder (ann_dir/, classes.json) or an ann_dir.")],
    out: Annotated[Path, typer.Option("--out", help="Submission CSV to write.")],
    style: SubmissionStyleOpt,
    size: SideOpt = 256,
    classes: Annotated[Path | None, typer.Option("--classes", help="classes.json.", show_default="MASKS/classes.json")]
    = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Mask folder -> competition submission CSV.

    Example:

        datatools convert submission --masks pred/ --style class-ids \\
            --size 256 --out submission.csv
    """
    if out.exists() and not overwrite:
        raise DatatoolsError(f"{out}: exists (pass --overwrite to replace it)")
    n = mask_dir_to_submission(masks, out, SubmissionStyle.parse(style), size=size, classes=classes)
    typer.echo(f"wrote {n} images to {out}")


def _shape(value: str | None) -> str | None:
    if value is not None and "," not in value:
        raise typer.BadParameter(f"must be H,W, got {value!r}")
    return size_callback(value)


@app.command("from-submission")
@handle_errors
def from_submission(
    csv: Annotated[Path, typer.Option("--csv", help="Submission CSV.")],
    out: OutOpt,
    style: SubmissionStyleOpt,
    classes: Annotated[Path, typer.Option("--classes", help="classes.json naming the classes.")],
    size: SideOpt = 256,
    shape: Annotated[str | None, typer.Option("--shape", callback=_shape, metavar="H,W",
                                              help="rle: mask height,width, e.g. 2048,2048.", show_default=False)]
    = None,
    mask_format: MaskFormatOpt = MaskFormat.PALETTE,
    overwrite: OverwriteOpt = False,
) -> None:
    """Competition submission CSV -> mask folder (ann_dir/ + classes.json).

    Example:

        datatools convert from-submission --csv output.csv --style rle \\
            --shape 2048,2048 --classes classes.json --out pred_masks/
    """
    n = submission_to_mask_dir(csv, out, SubmissionStyle.parse(style), ClassMap.load(classes), size=size,
                               shape_hw=parse_size_hw(shape) if shape else None,
                               mask_format=mask_format, overwrite=overwrite)
    typer.echo(f"wrote {n} masks to {out / ANN_DIR}")

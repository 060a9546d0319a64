"""``datatools edit``: new datasets with classes edited, several datasets merged, split, or subset."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from datatools.cli._common import (
    AnnOpt,
    DataOpt,
    ImagesOpt,
    OutOpt,
    OverwriteOpt,
    PartialFoldsOpt,
    ProgressOpt,
    SeedOpt,
    SkipInvalidOpt,
    WorkersOpt,
    handle_errors,
    open_dataset,
)
from datatools.cli.folds import DEFAULT_STRATIFY, GroupByOpt, MaxDistanceOpt
from datatools.core.atomic import check_output_dir
from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError
from datatools.edit.refs import ClassRef, parse_list, parse_pair
from datatools.edit.split import parse_ratios
from datatools.folds.api import FoldConfig
from datatools.folds.labels import Stratify

app = typer.Typer(no_args_is_help=True, help="Write a NEW dataset with classes dropped, merged, renamed or "
                  "renumbered, datasets merged, split into train/valid/test, or a subset.")

NAMES_HELP = "NAME or id:N; \\, and \\= escape a comma or '=' in a name."


def _checked(parse: object) -> object:
    """A typer callback that runs ``parse`` on each value (of a list option too) and turns ValueError into a
    one-line usage error."""

    def callback(value: object) -> object:
        if value is None:
            return value
        for item in value if isinstance(value, list) else [value]:
            try:
                parse(item)  # type: ignore[operator]
            except ValueError as exc:
                message = str(exc)
                raise typer.BadParameter(message if str(item) in message else f"{item!r}: {message}") from None
        return value

    return callback


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)


@app.command("classes")
@handle_errors
def classes(
    out: OutOpt,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    drop: Annotated[list[str] | None, typer.Option("--drop", callback=_checked(ClassRef.parse), help="Remove a "
                                                   "class and its annotations (repeatable). " + NAMES_HELP,
                                                   show_default=False)] = None,
    as_ignore: Annotated[bool, typer.Option("--as-ignore", help="Dropped annotations become ignore regions "
                                            "(images[].datatools.ignore, RLE) instead of being removed.")] = False,
    merge: Annotated[list[str] | None, typer.Option("--merge", callback=_checked(lambda t: parse_pair(t, True)),
                                                    metavar="NEW=OLD,OLD", help="Join classes into one named NEW "
                                                    "with the first's id (repeatable).", show_default=False)] = None,
    rename: Annotated[list[str] | None, typer.Option("--rename", callback=_checked(lambda t: parse_pair(t, False)),
                                                     metavar="OLD=NEW", help="Rename a class (repeatable).",
                                                     show_default=False)] = None,
    reorder: Annotated[str | None, typer.Option("--reorder", callback=_checked(parse_list), metavar="A,B,...",
                                                help="These classes first, in this order; the rest keep theirs.",
                                                show_default=False)] = None,
    drop_empty: Annotated[bool, typer.Option("--drop-empty", help="Remove the Roboflow placeholder (no "
                                             "annotations, the supercategory of the others).")] = False,
    reindex: Annotated[bool, typer.Option("--reindex", help="Renumber category ids 1..K in the final order.")
                       ] = False,
    skip_invalid: SkipInvalidOpt = False,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Drop, merge, rename, reorder or renumber classes; write the result as a new dataset.

    Steps run in this order: --drop, --merge, --rename, --reorder, --drop-empty, --reindex. A class is named by
    its name (every category with that name) or as id:N; in --merge, --rename and --reorder a backslash makes the
    next character literal (a\\,b is the name "a,b"; \\id:3 the name "id:3"). Segmentations are never changed.

    Example:

        datatools edit classes --data ds/ --drop-empty \\
            --merge 'sharps=syringe,ampoule' --reindex --out ds_edited/
    """
    from datatools.edit.api import write_classes
    from datatools.edit.classes import ClassEdit

    try:
        edit = ClassEdit(drop=tuple(drop or ()), merge=tuple(merge or ()), rename=tuple(rename or ()),
                         reorder=reorder, drop_empty=drop_empty, reindex=reindex, as_ignore=as_ignore)
    except ValueError as exc:
        raise DatatoolsError(str(exc).replace("as_ignore goes with drop", "--as-ignore goes with --drop")) from None
    check_output_dir(out, overwrite)
    ds = open_dataset(ann, images, data, skip_invalid=skip_invalid, workers=workers, progress=progress)
    r = write_classes(ds, out, edit, overwrite=overwrite)
    s = r.summary
    typer.echo(f"wrote {out}: {s['categories_before']} -> {s['categories_after']} classes, "
               f"{len(r.coco['annotations'])} annotations ({s['annotations_dropped']} dropped, "
               f"{s['annotations_ignored']} of them as ignore regions, {s['relabelled']} relabelled)")
    if drop_empty and not s["placeholder_removed"]:
        _warn(["--drop-empty: no placeholder category found (one without annotations that is the supercategory "
               "of every other)"])


@app.command("merge")
@handle_errors
def merge(
    out: OutOpt,
    data: Annotated[list[Path] | None, typer.Option("--data", help="A dataset folder written by datatools "
                                                    "(repeatable).", show_default=False)] = None,
    ann: Annotated[list[Path] | None, typer.Option("--ann", help="A COCO json (repeatable, each with an --images).",
                                                   show_default=False)] = None,
    images: Annotated[list[Path] | None, typer.Option("--images", help="The image folder of each --ann, in "
                                                      "order.", show_default=False)] = None,
    skip_invalid: SkipInvalidOpt = False,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Merge datasets into one: the --data folders first, then the --ann/--images pairs, in order.

    Image and annotation ids become 1..N; categories are matched by name; each image records its dataset in
    images[].datatools.origin; a file name already taken moves under a folder named after its dataset.

    Example:

        datatools edit merge --data ds/ --ann valid/_annotations.coco.json \\
            --images valid/ --out merged/
    """
    from datatools.edit.api import write_merge

    anns, roots = list(ann or []), list(images or [])
    if len(anns) != len(roots):
        raise DatatoolsError(f"give one --images per --ann (got {len(anns)} --ann and {len(roots)} --images)")
    if len(data or []) + len(anns) < 2:
        raise DatatoolsError("merge needs at least two datasets (--data DIR, or --ann F --images DIR)")
    check_output_dir(out, overwrite)
    inputs: list[Dataset] = [open_dataset(None, None, d, skip_invalid=skip_invalid, workers=workers,
                                          progress=progress) for d in data or []]
    inputs += [open_dataset(a, i, None, skip_invalid=skip_invalid, workers=workers, progress=progress)
               for a, i in zip(anns, roots, strict=True)]
    r = write_merge(inputs, out, overwrite=overwrite)
    renamed = sum(i["renamed_files"] for i in r.summary["inputs"])
    typer.echo(f"wrote {out}: {len(r.coco['images'])} images, {len(r.coco['annotations'])} annotations, "
               f"{len(r.coco['categories'])} classes from {len(inputs)} datasets ({renamed} files renamed)")


def _names(value: str) -> list[str]:
    names = [n.strip() for n in value.split(",")]
    if len(names) not in (2, 3) or any(not n or "/" in n or n.startswith(".") for n in names) or \
            len(set(names)) != len(names):
        raise ValueError(f"expected 2 or 3 distinct folder names, got {value!r}")
    return names


@app.command("split")
@handle_errors
def split(
    out: OutOpt,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    ratios: Annotated[str | None, typer.Option("--ratios", callback=_checked(parse_ratios), metavar="T,V[,TEST]",
                                               help="Shares of train, valid (and test), multiples of 0.05.",
                                               show_default="0.8,0.2")] = None,
    names: Annotated[str | None, typer.Option("--names", callback=_checked(_names), help="Folder names of the "
                                              "splits.", show_default="train,valid[,test]")] = None,
    seed: SeedOpt = FoldConfig.seed,
    stratify: Annotated[Stratify, typer.Option("--stratify", help="Balance per class the images holding it, its "
                                               "instances, or its pixels.")] = DEFAULT_STRATIFY,
    group_by: GroupByOpt = None,
    max_distance: MaxDistanceOpt = FoldConfig.max_distance,
    ignore_provenance: Annotated[bool, typer.Option("--ignore-provenance", help="Let derived images "
                                                    "(images[].datatools.sources) leave their sources' split.")
                                 ] = not FoldConfig.provenance,
    folds: Annotated[Path | None, typer.Option("--folds", help="Split by this folds.parquet instead: train = the "
                                               "other folds, valid = --fold.", show_default=False)] = None,
    fold: Annotated[int | None, typer.Option("--fold", min=0, help="The fold of --folds that becomes valid.",
                                             show_default=False)] = None,
    partial_folds: PartialFoldsOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Split a dataset into train / valid (/ test) datasets: class-stratified and group-aware by the folds
    machinery (the same --group-by, provenance and stratification as `datatools folds`), or by a fold of an
    existing folds table.

    Writes OUT/train, OUT/valid (OUT/test), each a dataset folder; splits.parquet (image_id, file_name, group,
    split) and summary.json (images and class shares per split).

    Example:

        datatools edit split --data ds/ --ratios 0.8,0.2 --seed 0 --out splits/ \\
            --group-by 'regex:^(.*)_(jpg|jpeg|png)\\.rf\\.'

        datatools edit split --data ds/ --folds folds.parquet --fold 0 \\
            --out fold0/
    """
    from datatools.edit.api import write_split
    from datatools.edit.split import split_by_fold, split_by_ratio
    from datatools.folds.groups import GroupSpec
    from datatools.folds.labels import PixelSource

    if (folds is None) != (fold is None):
        raise DatatoolsError("--folds and --fold go together")
    if folds is not None and ratios is not None:
        raise DatatoolsError("give --ratios or --folds with --fold, not both")
    try:
        specs = tuple(GroupSpec.parse(s) for s in group_by or ())
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--group-by") from None
    parts = parse_ratios(ratios or "0.8,0.2")
    split_names = _names(names) if names else None
    if split_names and len(split_names) != (2 if folds is not None else len(parts)):
        wanted = "--folds makes 2 splits" if folds is not None else f"--ratios makes {len(parts)} splits"
        raise DatatoolsError(f"--names gives {len(split_names)} names but {wanted}")
    check_output_dir(out, overwrite)
    ds = open_dataset(ann, images, data, skip_invalid=skip_invalid, workers=workers, progress=progress)
    if folds is not None and fold is not None:
        result = split_by_fold(ds, folds, fold, split_names, partial=partial_folds)
    else:
        config = FoldConfig(seed=seed, stratify=stratify, group_by=specs, max_distance=max_distance,
                            pixel_source=PixelSource.MASKS if stratify is Stratify.PIXELS else PixelSource.AREA,
                            provenance=not ignore_provenance)
        result = split_by_ratio(ds, parts, split_names, config, workers=workers, progress=progress)
    write_split(ds, out, result, overwrite=overwrite)
    rows = result.summary["splits"]
    typer.echo(f"wrote {out}: " + ", ".join(f"{n} {rows[n]['images']} images ({rows[n]['groups']} groups)"
                                             for n in result.names)
               + f"; largest class-share deviation {100 * result.summary['max_image_share_dev']:.1f} points")
    _warn(result.summary["warnings"])


def _ids(value: str) -> list[int]:
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integer image ids, got {value!r}") from None


def _regex(value: str) -> None:
    import re

    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{value!r} is not a regular expression ({exc})") from None


@app.command("subset")
@handle_errors
def subset(
    out: OutOpt,
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    ids: Annotated[list[str] | None, typer.Option("--ids", callback=_checked(_ids), metavar="ID,ID",
                                                  help="Image ids (repeatable).", show_default=False)] = None,
    name: Annotated[list[str] | None, typer.Option("--name", metavar="GLOB", help="File-name pattern, e.g. "
                                                   "'site3/*.jpg' (repeatable).", show_default=False)] = None,
    regex: Annotated[list[str] | None, typer.Option("--regex", callback=_checked(_regex), help="Regular "
                                                    "expression searched in the file name (repeatable).",
                                                    show_default=False)] = None,
    has_class: Annotated[list[str] | None, typer.Option("--has-class", callback=_checked(ClassRef.parse),
                                                        help="Images holding this class (repeatable). " + NAMES_HELP,
                                                        show_default=False)] = None,
    findings: Annotated[Path | None, typer.Option("--findings", help="findings.parquet of `datatools clean` on "
                                                  "this dataset: the images it flags.", show_default=False)] = None,
    kinds: Annotated[str | None, typer.Option("--kinds", help="With --findings: only these comma-separated kinds "
                                              "or codes.", show_default="every kind")] = None,
    exclude: Annotated[bool, typer.Option("--exclude", help="Keep the images that do NOT match.")] = False,
    skip_invalid: SkipInvalidOpt = False,
    workers: WorkersOpt = None,
    overwrite: OverwriteOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Keep the images that match every given criterion (values of one option are alternatives), with their
    annotations; --exclude keeps the others. Categories are kept whole.

    Example:

        datatools edit subset --ann train.json --images data/ \\
            --findings clean/findings.parquet --exclude --out kept/

        datatools edit subset --data ds/ --has-class syringe --out syringes/
    """
    from datatools.edit.api import write_subset
    from datatools.edit.subset import Selection

    try:
        selection = Selection(ids=tuple(i for v in ids or () for i in _ids(v)), names=tuple(name or ()),
                              regex=tuple(regex or ()), classes=tuple(has_class or ()), findings=findings,
                              kinds=tuple(k.strip() for k in (kinds or "").split(",") if k.strip()), exclude=exclude)
    except ValueError as exc:
        raise DatatoolsError(str(exc).replace("kinds go with findings", "--kinds goes with --findings")) from None
    check_output_dir(out, overwrite)
    ds = open_dataset(ann, images, data, skip_invalid=skip_invalid, workers=workers, progress=progress)
    s = write_subset(ds, out, selection, overwrite=overwrite)
    typer.echo(f"wrote {out}: {s['images']} of {s['images_before']} images, {s['annotations']} annotations")

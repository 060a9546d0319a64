"""``datatools validate``: every problem of a dataset, with a severity."""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Annotated

import typer

from datatools.cli._common import (
    AnnOpt,
    DataOpt,
    EngineOpt,
    ImagesOpt,
    ProgressOpt,
    RetriesOpt,
    SchedulerOpt,
    WorkersOpt,
    fail,
    handle_errors,
)
from datatools.core.engine import DEFAULT_RETRIES, Engine
from datatools.core.errors import DatatoolsError
from datatools.core.issues import Severity, summarize
from datatools.validation import validate_dataset

INFO_EXAMPLES = 3


@handle_errors
def validate(
    ann: AnnOpt = None,
    images: ImagesOpt = None,
    data: DataOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print every issue as JSON on stdout.")] = False,
    strict: Annotated[bool, typer.Option("--strict", help="Warnings count as failures (exit 1).")] = False,
    decode: Annotated[
        bool, typer.Option("--decode/--no-decode", help="Decode every image fully to find damaged files.")
    ] = True,
    workers: WorkersOpt = None,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    progress: ProgressOpt = True,
) -> None:
    """Report every problem of a COCO dataset: records, segmentations and image files.

    Exit code 0 when nothing worse than warnings is found (with --strict, warnings count), 1 when errors are
    found, 2 when the input cannot be read at all.

    Example:

        datatools validate --ann data/train.json --images data/ --json \\
            > issues.json
    """
    try:
        result = validate_dataset(ann, images, data, decode=decode, workers=workers, progress=progress and not as_json)
    except DatatoolsError as exc:
        raise fail(str(exc)) from None
    counts = summarize(result.issues)
    if as_json:
        typer.echo(json.dumps({"annotations": result.annotations, "images": result.images, "summary": counts,
                               "issues": [i.to_dict() for i in result.issues]}, indent=1))
    else:
        infos = defaultdict(list)
        for issue in result.issues:
            if issue.severity is Severity.INFO:
                infos[issue.code].append(issue)
            else:
                typer.echo(issue.line())
        for code, group in infos.items():
            for issue in group[:INFO_EXAMPLES]:
                typer.echo(issue.line())
            if len(group) > INFO_EXAMPLES:
                typer.echo(f"{result.annotations}: info: ... and {len(group) - INFO_EXAMPLES} more [{code}] "
                           "(--json lists all)")
        typer.echo(f"{result.annotations}: {counts['error']} errors, {counts['warning']} warnings, "
                   f"{counts['info']} info")
    failed = counts["error"] > 0 or (strict and counts["warning"] > 0)
    raise typer.Exit(1 if failed else 0)

"""``datatools pseudo-label``: confident pixels of predictions become labels, the rest ignore regions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from datatools.cli._common import (
    AnnOpt,
    DataOpt,
    EngineOpt,
    OutOpt,
    OverwriteOpt,
    ProgressOpt,
    RetriesOpt,
    SchedulerOpt,
    SeedOpt,
    SkipInvalidOpt,
    fail,
    handle_errors,
    open_dataset,
)
from datatools.core.dataset import Dataset
from datatools.core.engine import DEFAULT_RETRIES, Engine
from datatools.pseudo.rule import RuleConfig
from datatools_train.options import BlendOpt, SlidingOpt  # torch-free
from datatools_train.sliding import Blend, SlidingWindow

_D = RuleConfig()  # the one place defaults come from


@handle_errors
def pseudo_label(
    out: OutOpt,
    ckpt: Annotated[list[Path] | None, typer.Option("--ckpt", help="Checkpoint of datatools train fit (repeat for "
                                                    "an ensemble: mean of probabilities).", show_default=False)]
    = None,
    tta: Annotated[str | None, typer.Option("--tta", help="With --ckpt: test-time views, e.g. hflip,vflip,rot90,"
                                            "scale:0.75,1,1.25.", show_default=False)] = None,
    sliding_window: SlidingOpt = None,
    blend: BlendOpt = Blend.GAUSSIAN,
    probs: Annotated[list[Path] | None, typer.Option("--probs", help="Folder of datatools train predict "
                                                     "--save-probs (repeat to average several).",
                                                     show_default=False)] = None,
    predictions: Annotated[Path | None, typer.Option("--predictions", help="COCO results file of scored instance "
                                                     "masks (needs --ann/--images or --data for the image ids).",
                                                     show_default=False)] = None,
    ann: AnnOpt = None,
    images: Annotated[Path | None, typer.Option("--images", help="Image folder (alone: every image in it, "
                                                "unlabelled), or the root of --ann.", show_default=False)] = None,
    data: DataOpt = None,
    threshold: Annotated[float, typer.Option("--threshold", help="Keep a pixel's arg-max class at this probability "
                                             "(multilabel: p >= t positive, p <= 1 - t negative); results files: the "
                                             "least score of an annotation. In (0, 1].")] = _D.threshold,
    class_threshold: Annotated[list[str] | None, typer.Option("--class-threshold", help="NAME=T: the threshold "
                                                              "of one class (repeatable; background too).",
                                                              show_default=False)] = None,
    uncertain: Annotated[float, typer.Option("--uncertain", help="Results files: instances scoring from this up "
                                             "to --threshold become ignore regions; lower ones are dropped.")]
    = _D.uncertain,
    min_area: Annotated[int, typer.Option("--min-area", help="Connected components of a class under this many "
                                          "pixels become ignore (not background).")] = _D.min_area,
    min_confident: Annotated[float, typer.Option("--min-confident", help="Skip (and list) images whose share of "
                                                 "non-ignored pixels is under this.")] = _D.min_confident,
    merge_with: Annotated[Path | None, typer.Option("--merge-with", help="Labelled dataset folder written first "
                                                    "into --out; the pseudo-labelled images follow under pseudo/ "
                                                    "with new ids.", show_default=False)] = None,
    link: Annotated[bool, typer.Option("--link", help="Hard-link images into --out instead of copying them.")]
    = False,
    workers: Annotated[int | None, typer.Option("--workers", min=0, help="Processes for per-image work (--probs, "
                                                "--predictions); DataLoader workers with --ckpt (default there: "
                                                "the trainer's).", show_default="all cores")] = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="With --ckpt: images per batch.")] = 8,
    device: Annotated[str, typer.Option("--device", help="With --ckpt: auto (CUDA when available), cpu, cuda.")]
    = "auto",
    seed: SeedOpt = 0,
    engine: EngineOpt = Engine.LOCAL, scheduler: SchedulerOpt = None, retries: RetriesOpt = DEFAULT_RETRIES,
    overwrite: OverwriteOpt = False,
    skip_invalid: SkipInvalidOpt = False,
    progress: ProgressOpt = True,
) -> None:
    """Pseudo-label images from checkpoints, saved probabilities or a COCO results file: a new dataset whose
    confident pixels are annotations and whose other pixels are ignore regions (255 when rendered).

    Example:

        datatools pseudo-label --ckpt runs/a/best.pt --ckpt runs/b/best.pt \\
            --tta hflip --images test/ --threshold 0.9 --min-area 64 --out pseudo/

        datatools train fit --data labelled/ --extra pseudo/ --out runs/with_pseudo
    """
    from datatools.pseudo import CheckpointSource, ProbabilitySource, ResultsSource
    from datatools.pseudo import pseudo_label as run
    from datatools.pseudo.sources import Source

    given = [name for name, v in (("--ckpt", ckpt), ("--probs", probs), ("--predictions", predictions)) if v]
    if len(given) != 1:
        raise fail("give exactly one source of predictions: --ckpt, --probs or --predictions"
                   + (f" (got {', '.join(given)})" if given else ""))
    if tta and not ckpt:
        raise fail("--tta applies to --ckpt only (saved probabilities already hold their views)")
    if sliding_window and not ckpt:
        raise fail("--sliding-window applies to --ckpt only (saved probabilities are already predicted)")
    rule = RuleConfig(threshold=threshold, class_thresholds=RuleConfig.parse_class_thresholds(class_threshold or []),
                      uncertain=uncertain, min_area=min_area, min_confident=min_confident)
    if predictions is not None and uncertain > threshold:
        raise fail(f"--uncertain: {uncertain} must lie in (0, --threshold {threshold}]")
    if ann is None and data is None and images is None:
        raise fail("give the images to label: --images DIR, --ann F --images DIR, or --data DIR")
    if predictions is not None and ann is None and data is None:
        raise fail("--predictions needs the COCO dataset its image ids refer to (--ann F --images DIR or --data DIR)")
    dataset = None if ann is None and data is None else open_dataset(ann, images, data, skip_invalid=skip_invalid,
                                                                                  progress=progress)
    merged = Dataset.from_dir(merge_with) if merge_with is not None else None
    source: Source
    if ckpt:
        sliding = SlidingWindow.parse(sliding_window, blend, tile_batch=batch) if sliding_window else None
        source = CheckpointSource(ckpt, tta=tta, batch=batch, device=device, loader_workers=workers, sliding=sliding)
    elif probs:
        source = ProbabilitySource(probs)
    else:
        assert predictions is not None and dataset is not None
        source = ResultsSource(predictions, dataset.categories)
    result = run(source, out, dataset=dataset, images=images if dataset is None else None, rule=rule,
                 merge_with=merged, link=link, workers=workers if not ckpt else None, seed=seed,
                 overwrite=overwrite, progress=progress)
    typer.echo(f"pseudo-labelled {result.images} images into {out}"
               + (f"; skipped {len(result.skipped)} under --min-confident {min_confident}: "
                  + ", ".join(result.skipped) if result.skipped else "")
               + f"; summary {out / 'summary.json'}")

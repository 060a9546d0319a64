"""``datatools train compare``: two or more ``train evaluate`` folders side by side, each against the first.

Output folder (written atomically)::

    out/
      per_class.csv   class, then per evaluation i: iou_i, dice_i, boundary_iou_i (when it has the breakdown) and,
                      for i >= 1, delta_iou_i, delta_dice_i, delta_boundary_iou_i (evaluation i minus evaluation 0)
      images.csv      image_id, file_name, score_i per evaluation, delta_i (i >= 1), images all evaluations scored
      compare.html    the class table and, per evaluation, the images that improved and regressed most
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatools.core.atomic import output_dir
from datatools.core.errors import InvalidDatasetError, UnreadableFileError

__all__ = ["CompareResult", "compare"]


@dataclass(frozen=True)
class CompareResult:
    out: Path
    per_class: Any
    images: Any

    def table(self) -> str:
        """The per-class deltas as plain text."""
        cols = ["class"] + [c for c in self.per_class.columns if c.startswith("delta_")]
        return str(self.per_class[cols].to_string(index=False, float_format=lambda v: f"{v:+.4f}"))


def _read(folder: Path) -> tuple[Any, Any]:
    import pandas as pd

    per_class, per_image = folder / "per_class.csv", folder / "per_image.parquet"
    for path in (per_class, per_image):
        if not path.is_file():
            raise UnreadableFileError(f"{path}: not found; give folders written by datatools train evaluate")
    try:
        classes = pd.read_csv(per_class, keep_default_na=False, na_values=[""])
        images = pd.read_parquet(per_image)
    except Exception as exc:  # pandas and pyarrow raise many types for a damaged file
        raise UnreadableFileError(f"{folder}: unreadable evaluation tables ({exc})") from None
    if not {"class", "iou", "dice"} <= set(classes.columns) or not {"image_id", "score"} <= set(images.columns):
        raise InvalidDatasetError(f"{folder}: per_class.csv or per_image.parquet lacks its columns")
    classes = classes[classes["class"] != "mean"].set_index("class")[["iou", "dice"]]
    breakdown = folder / "error_breakdown.csv"
    if breakdown.is_file():
        biou = pd.read_csv(breakdown, keep_default_na=False, na_values=[""]).set_index("class")["boundary_iou"]
        classes = classes.join(biou, how="left")
    return classes, images


def compare(evals: Sequence[str | os.PathLike[str]], out: str | os.PathLike[str], *, top: int = 8,
            overwrite: bool = False) -> CompareResult:
    """Per-class deltas of evaluations against the first, and the images that changed most.

    Args:
        evals: two or more ``datatools train evaluate`` output folders (the first is the reference).
        out: output folder (see the module docstring).
        top: images listed per direction (improved, regressed) and evaluation in the page.
        overwrite: replace a non-empty ``out``.

    Raises:
        UnreadableFileError: a folder lacks ``per_class.csv`` or ``per_image.parquet``.
        InvalidDatasetError: fewer than two folders, or no image scored by all of them.

    Example:
        >>> compare(["eval_r18/", "eval_r34/"], "cmp/").table()
    """
    import pandas as pd

    folders = [Path(e) for e in evals]
    if len(folders) < 2:
        raise InvalidDatasetError("give at least two evaluation folders to compare")
    read = [_read(f) for f in folders]
    per_class = pd.DataFrame(index=pd.Index(list(dict.fromkeys(c for t, _ in read for c in t.index)), name="class"))
    for i, (classes, _) in enumerate(read):
        for col in classes.columns:
            per_class[f"{col}_{i}"] = classes[col]
            if i:
                per_class[f"delta_{col}_{i}"] = classes[col] - read[0][0][col] if col in read[0][0] else math.nan
    images = None
    for i, (_, table) in enumerate(read):
        part = table[["image_id", "file_name", "score"]].rename(columns={"score": f"score_{i}"}) if i == 0 else \
            table[["image_id", "score"]].rename(columns={"score": f"score_{i}"})
        images = part if images is None else images.merge(part, on="image_id", how="inner")
    assert images is not None
    if images.empty:
        raise InvalidDatasetError(f"{', '.join(map(str, folders))}: no image is scored by every evaluation")
    for i in range(1, len(read)):
        images[f"delta_{i}"] = images[f"score_{i}"] - images["score_0"]
    per_class = per_class.reset_index()
    with output_dir(out, overwrite) as tmp:
        per_class.to_csv(tmp / "per_class.csv", index=False)
        images.to_csv(tmp / "images.csv", index=False)
        (tmp / "compare.html").write_text(_page(folders, per_class, images, top), encoding="utf-8")
    return CompareResult(Path(out), per_class, images)


def _page(folders: Sequence[Path], per_class: Any, images: Any, top: int) -> str:
    from datatools.eda._html import esc, section, table
    from datatools.eda.report import REPORT_CSS

    def cell(v: Any, signed: bool = False) -> str:
        if isinstance(v, float):
            return "–" if math.isnan(v) else (f"{v:+.4f}" if signed else f"{v:.4f}")
        return esc(v)

    head = [esc(c) for c in per_class.columns]
    rows = [[cell(v, str(c).startswith("delta_")) for c, v in zip(per_class.columns, r, strict=True)]
            for r in per_class.itertuples(index=False)]
    legend = "".join(f"<li><code>{i}</code>: {esc(f)}</li>" for i, f in enumerate(folders))
    body = [section("classes", "Per class", f"<ul>{legend}</ul>" + table(head, rows),
                    "Scores of each evaluation; deltas are evaluation i minus evaluation 0.")]
    for i in range(1, len(folders)):
        for title, ascending in (("improved", False), ("regressed", True)):
            chosen = images.sort_values(f"delta_{i}", ascending=ascending).head(top)
            chosen = chosen[chosen[f"delta_{i}"] > 0] if not ascending else chosen[chosen[f"delta_{i}"] < 0]
            rows = [[esc(r["file_name"]), cell(r["score_0"]), cell(r[f"score_{i}"]), cell(r[f"delta_{i}"], True)]
                    for r in chosen.to_dict("records")]
            body.append(section(f"{title}{i}", f"Images {title} most: {i} vs 0",
                                table(["image", "score 0", f"score {i}", "delta"], rows) if rows
                                else "<p class='note'>none</p>"))
    return ('<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>compare</title>'
            f'<style>{REPORT_CSS}</style></head><body><header class="top"><div class="wrap"><h1>Evaluations '
            f'compared</h1></div></header><main class="wrap">{"".join(body)}</main></body></html>\n')

"""The rare-class effect on the full medical-waste train split: ``copy-paste --rare auto --target-share S`` brings
the rarest class's image share to S. The class tables before and after are ``datatools eda``'s ``classes.parquet``,
checked against the rasteriser (pixels, not records), both independent of the counts ``augment`` keeps for
itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.core.masks import rasterize_multilabel
from datatools.eda.api import run_eda

TARGET = 0.6


def class_table(ds: Dataset) -> dict[str, dict[str, Any]]:
    """Per class: images holding at least one of its pixels, their share, and the class's share of all pixels."""
    cm = ds.class_map()
    images = np.zeros(len(cm), dtype=np.int64)
    pixels = np.zeros(len(cm), dtype=np.int64)
    total = 0
    for img in ds.images:
        planes = rasterize_multilabel(ds.annotations_of(img["id"]), img["height"], img["width"], cm)
        counts = planes.reshape(len(cm), -1).sum(axis=1)
        images += counts > 0
        pixels += counts
        total += img["height"] * img["width"]
    n = len(ds.images)
    return {c.name: {"images": int(images[c.value - 1]), "image_share": images[c.value - 1] / n,
                     "pixel_share": pixels[c.value - 1] / total} for c in cm.classes}


def eda_class_table(ds_ann: Path, images: Path, out: Path) -> dict[str, dict[str, Any]]:
    """The per-class rows of ``datatools eda``'s ``classes.parquet`` (records only: no pixel is decoded)."""
    import pandas as pd

    run_eda(ds_ann, images, out=out, read_images=False, gallery=0, workers=2, progress=False)
    rows = pd.read_parquet(out / "classes.parquet").to_dict("records")
    return {r["name"]: r for r in rows if r["name"] not in ("background", "ignore")}


def _print(title: str, table: dict[str, dict[str, Any]], n: int) -> None:
    print(f"\n{title} ({n} images; datatools eda classes.parquet)\n"
          f"{'class':<15}{'images':>8}{'image share':>13}{'instances':>11}{'pixel share':>13}")
    for name, row in table.items():
        print(f"{name:<15}{row['images']:>8}{row['image_share']:>13.1%}{row['instances']:>11}"
              f"{row['pixel_share']:>13.2%}")


@pytest.mark.shared_data
def test_copy_paste_rare_auto_reaches_the_target_share(shared_data: Path, tmp_path: Path) -> None:
    split = shared_data / "medical_waste" / "train"
    before_ds = Dataset.load(split / "_annotations.coco.json", split)
    before = class_table(before_ds)
    present = {k: v for k, v in before.items() if v["images"]}
    rarest = min(present, key=lambda k: present[k]["image_share"])
    assert before[rarest]["image_share"] < TARGET

    out = tmp_path / "cp"
    result = CliRunner().invoke(app, [
        "augment", "copy-paste", "--ann", str(split / "_annotations.coco.json"), "--images", str(split),
        "--rare", "auto", "--target-share", str(TARGET), "--merge", "--seed", "0", "--workers", "2",
        "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    after_ds = Dataset.load(out / "annotations.json", out / "images")
    after = class_table(after_ds)
    eda_before = eda_class_table(split / "_annotations.coco.json", split, tmp_path / "eda_before")
    eda_after = eda_class_table(out / "annotations.json", out / "images", tmp_path / "eda_after")
    _print("before: medical_waste/train", eda_before, len(before_ds.images))
    _print(f"after: copy-paste --rare auto --target-share {TARGET} --merge", eda_after, len(after_ds.images))
    print(result.output)
    for eda_table, raster in ((eda_before, before), (eda_after, after)):  # eda's records agree with the pixels
        assert {k: v["images"] for k, v in eda_table.items()} == {k: v["images"] for k, v in raster.items()}
    assert TARGET <= eda_after[rarest]["image_share"] < TARGET + 1.5 / len(after_ds.images)

    n_new = len(after_ds.images) - len(before_ds.images)
    assert n_new > 0
    # the rarest class reaches the target share, and does not overshoot it by more than one image's worth
    assert TARGET <= after[rarest]["image_share"] < TARGET + 1.5 / len(after_ds.images)
    # every new image holds the rare class: it is what was pasted
    assert after[rarest]["images"] - before[rarest]["images"] == n_new
    # the source images are all there, untouched
    assert {i["file_name"] for i in before_ds.images} <= {i["file_name"] for i in after_ds.images}
    assert {k: v["images"] for k, v in class_table(after_ds.subset([i["id"] for i in before_ds.images])).items()} \
        == {k: v["images"] for k, v in before.items()}

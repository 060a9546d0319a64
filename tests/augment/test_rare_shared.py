"""The rare-class effect on the full medical-waste train split: ``copy-paste --rare auto --target-share S`` brings
the rarest class's image share to S. The class tables before and after are computed with the rasteriser (there
is no ``eda`` command yet), independently of the counts ``augment`` keeps for itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.core.masks import rasterize_multilabel

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


def _print(title: str, table: dict[str, dict[str, Any]], n: int) -> None:
    print(f"\n{title} ({n} images)\n{'class':<15}{'images':>8}{'image share':>13}{'pixel share':>13}")
    for name, row in table.items():
        print(f"{name:<15}{row['images']:>8}{row['image_share']:>13.1%}{row['pixel_share']:>13.2%}")


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
    _print("before: medical_waste/train", before, len(before_ds.images))
    _print(f"after: copy-paste --rare auto --target-share {TARGET} --merge", after, len(after_ds.images))
    print(result.output)

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

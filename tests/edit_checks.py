"""What every ``datatools edit`` output must satisfy, checked against its input on its own terms.

Pixels are rendered by datatools.core.masks (the one rasteriser) for the input and the output annotation and
compared; the rest is read from the json files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.core.issues import Severity
from datatools.core.masks import annotation_to_rle, mask_to_rle, rle_to_mask
from datatools.core.validate import validate_records

runner = CliRunner()
EXAMPLE = Path(__file__).parents[1] / "examples" / "medical_waste" / "train"
DERIVED = 5  # images 1, 3, 5, 7, 9 "derived" from images 0, 2, 4, 6, 8


def base_coco(n: int | None = None) -> dict[str, Any]:
    """The example's first ``n`` images (all by default) and their annotations, with the additions above."""
    coco = json.loads((EXAMPLE / "_annotations.coco.json").read_text())
    coco["images"] = coco["images"][:n]
    ids = {img["id"] for img in coco["images"]}
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in ids]
    coco["x_custom"] = {"kept": True}
    for k, img in enumerate(coco["images"]):
        img["x_site"] = f"s{k % 3}"
    for k in range(DERIVED):
        coco["images"][2 * k + 1]["datatools"] = {"op": "flip", "sources": [coco["images"][2 * k]["id"]],
                                                 "params": {"direction": "h"}, "seed": k}
    img = coco["images"][10]
    square = np.zeros((img["height"], img["width"]), dtype=bool)
    square[10:40, 50:90] = True
    img["datatools"] = {"ignore": [mask_to_rle(square)]}
    for ann in coco["annotations"]:
        ann["x_note"] = ann["id"] % 2
    return coco


OWN_IMG = {"id", "file_name", "datatools"}
OWN_ANN = {"id", "image_id", "category_id"}


def invoke(*args: str | Path, code: int = 0) -> Any:
    result = runner.invoke(app, [*map(str, args), "--no-progress"], terminal_width=200)
    assert result.exit_code == code, (args, result.output)
    if code == 2:
        lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
        assert "Traceback" not in result.output
    return result


def load(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "annotations.json").read_text(encoding="utf-8"))


def pixels(ann: dict[str, Any], img: dict[str, Any]) -> np.ndarray:
    return rle_to_mask(annotation_to_rle(ann["segmentation"], int(img["height"]), int(img["width"])))


def check_dataset(folder: Path) -> dict[str, Any]:
    """The folder validates (records and files) and its ids are unique; returns its COCO dict."""
    ds = Dataset.load(folder / "annotations.json", folder / "images")  # raises on any error
    errors = [i for i in validate_records(ds.coco, "out") if i.severity is Severity.ERROR]
    assert errors == []
    for section in ("images", "annotations", "categories"):
        ids = [r["id"] for r in ds.coco[section]]
        assert len(ids) == len(set(ids)), section
    return ds.coco


def check_image_kept(src_img: dict[str, Any], out_img: dict[str, Any], extra_datatools: set[str] = frozenset()
                     ) -> None:
    """Unknown fields and provenance of an image carried over (``extra_datatools``: keys the edit may add)."""
    assert {k: v for k, v in out_img.items() if k not in OWN_IMG} == \
        {k: v for k, v in src_img.items() if k not in OWN_IMG}
    src_meta, out_meta = src_img.get("datatools") or {}, out_img.get("datatools") or {}
    skip = set(extra_datatools) | {"sources"}  # sources: a merge renumbers them (checked by its test)
    assert {k: v for k, v in out_meta.items() if k not in skip} == {k: v for k, v in src_meta.items() if k not in skip}
    assert ("sources" in out_meta) == ("sources" in src_meta)

def check_annotation_kept(src: dict[str, Any], src_img: dict[str, Any], out: dict[str, Any],
                          out_img: dict[str, Any]) -> None:
    """Same pixels, same unknown fields."""
    assert np.array_equal(pixels(src, src_img), pixels(out, out_img)), (src["id"], out["id"])
    assert {k: v for k, v in out.items() if k not in OWN_ANN} == {k: v for k, v in src.items() if k not in OWN_ANN}

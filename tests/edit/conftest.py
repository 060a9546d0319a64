"""A dataset for the edit tests: the bundled example plus unknown fields, provenance links and an ignore region."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from clean_builders import tree_digest

from datatools.core.masks import mask_to_rle

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
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


def _write(root: Path, coco: dict[str, Any]) -> Path:
    (root / "images").mkdir()
    for img in coco["images"]:
        (root / "images" / img["file_name"]).symlink_to(EXAMPLE / img["file_name"])
    (root / "annotations.json").write_text(json.dumps(coco), encoding="utf-8")
    return root


@pytest.fixture(scope="session")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A datatools folder of the example's first 12 images (annotations.json + images/ of links to the files)."""
    return _write(tmp_path_factory.mktemp("edit_base"), base_coco(12))


@pytest.fixture(scope="session")
def base45(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same additions on all 45 images (for split's class shares)."""
    return _write(tmp_path_factory.mktemp("edit_base45"), base_coco())


@pytest.fixture(autouse=True)
def inputs_untouched(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test that uses ``base`` leaves it byte for byte as it was."""
    roots = [request.getfixturevalue(name) for name in ("base", "base45") if name in request.fixturenames]
    before = [tree_digest(root) for root in roots]
    yield
    assert [tree_digest(root) for root in roots] == before

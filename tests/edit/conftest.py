"""A dataset for the edit tests: the bundled example plus unknown fields, provenance links and an ignore region."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from clean_builders import tree_digest
from edit_checks import EXAMPLE, base_coco


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

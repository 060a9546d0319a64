"""Fixtures of the trainer tests: the tiny shape datasets of ``tiny_shapes``, written once per module."""

from __future__ import annotations

from pathlib import Path

import pytest
from tiny_shapes import write_dataset


@pytest.fixture(scope="module")
def tiny_multiclass(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(train folder, validation folder) of the multiclass shapes."""
    root = tmp_path_factory.mktemp("multiclass")
    return write_dataset(root / "train", 16, multilabel=False), write_dataset(root / "val", 6, multilabel=False,
                                                                              seed=1)


@pytest.fixture(scope="module")
def tiny_multilabel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(train folder, validation folder) of the overlapping multilabel shapes."""
    root = tmp_path_factory.mktemp("multilabel")
    return write_dataset(root / "train", 16, multilabel=True), write_dataset(root / "val", 6, multilabel=True,
                                                                             seed=1)

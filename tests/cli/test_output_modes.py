"""Every file and folder a command writes has the mode a plain ``open()`` / ``mkdir()`` gives under the user's umask
(issue 11 item 5): temporary files renamed into place used to keep tempfile's 0600 / 0700."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from output_modes import wrong_modes
from typer.testing import CliRunner

from datatools.cli.main import app

UMASKS = [0o022, 0o077]


@pytest.fixture
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """Set the process umask for the test and restore it after."""
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def run(*args: str) -> None:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, f"{args}: {result.output}"


@pytest.mark.parametrize("umask", UMASKS, indirect=True)
def test_data_commands_write_with_the_umask(umask: int, make_coco, tmp_path: Path) -> None:
    ann, images, _ = make_coco(tmp_path / "src")
    out = tmp_path / "out"
    src = ["--ann", str(ann), "--images", str(images)]
    run("convert", "masks", *src, "--out", str(out / "masks"), "--workers", "2")
    run("convert", "coco", *src, "--out", str(out / "coco"))
    run("convert", "submission", "--masks", str(out / "masks"), "--style", "class-ids", "--out",
        str(out / "sub.csv"))
    run("eda", *src, "--out", str(out / "eda"), "--workers", "1")
    run("folds", *src, "--k", "2", "--out", str(out / "folds"))
    run("augment", "flip", *src, "--out", str(out / "flip"), "--workers", "1")
    run("edit", "split", *src, "--ratios", "0.5,0.5", "--out", str(out / "split"))
    assert sorted(p.name for p in out.iterdir()) == ["coco", "eda", "flip", "folds", "masks", "split", "sub.csv"]
    assert wrong_modes(out, umask) == []

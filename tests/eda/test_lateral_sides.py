"""``datatools eda`` reports the lateral pairs and on which side of the image each of their classes sits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from lateral_data import write_lateral
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.eda.lateral import image_sides


def test_eda_reports_pairs_and_sides(tmp_path: Path) -> None:
    ann = write_lateral(tmp_path / "src")
    result = CliRunner().invoke(app, ["eda", "--ann", str(ann), "--images", str(tmp_path / "src" / "images"),
                                      "--out", str(tmp_path / "eda"), "--workers", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "lateral pair: left_x <-> right_x (swapped by horizontal flips)" in result.output
    assert "left_x on the image's right in 100% of 2 images" in result.output
    assert "right_x on the image's left in 100% of 2 images" in result.output
    assert "upper_y on the image's top in 100% of 2 images" in result.output
    summary = json.loads((tmp_path / "eda" / "summary.json").read_text())
    lateral = summary["lateral"]
    assert lateral["pairs"] == [{"flip": "horizontal", "classes": ["left_x", "right_x"]},
                                {"flip": "vertical", "classes": ["upper_y", "lower_y"]}]
    assert lateral["sides"]["left_x"]["images"] == 2
    assert (lateral["sides"]["left_x"]["right"], lateral["sides"]["left_x"]["left"]) == (1.0, 0.0)
    assert lateral["sides"]["lower_y"]["bottom"] == 1.0
    assert "Lateral classes" in (tmp_path / "eda" / "report.html").read_text()


def test_image_sides_against_the_centre() -> None:
    plane = np.zeros((5, 5), np.uint8)
    plane[2, 2] = 1
    assert image_sides(plane).tolist() == [1, 0, 0, 0, 0]  # the middle counts for no side
    plane[:, 0] = 1
    assert image_sides(plane).tolist() == [1, 1, 0, 0, 0]
    assert image_sides(np.zeros((4, 4), np.uint8)).tolist() == [1, 0, 0, 0, 0]


def test_image_sides_equal_a_brute_force_centroid() -> None:
    """The sides come from the cells' centroid (image moments): equal to the mean of the covered cells' coordinates,
    ties on the middle line included (mirror-symmetric planes)."""
    rng = np.random.default_rng(0)
    for i in range(2000):
        plane = (rng.random((64, 64)) < rng.random() * 0.05).astype(np.uint8)
        if i % 3 == 0:
            plane[:, :32] = plane[:, 32:][:, ::-1]  # centroid exactly on the vertical middle line
        ys, xs = np.nonzero(plane)
        expected = [1, 0, 0, 0, 0]
        if len(xs):
            cx, cy = xs.mean(), ys.mean()
            expected[1:] = [int(cx < 31.5), int(cx > 31.5), int(cy < 31.5), int(cy > 31.5)]
        assert image_sides(plane).tolist() == expected, i

"""Figures of the report on corner cases of real data."""

from __future__ import annotations

from datatools.eda.plots import render_plot


def test_pixel_overlap_with_a_single_overlap_value_renders() -> None:
    # one pair of classes overlapping: the log colour scale has vmin == vmax (the report used to fail here, e.g.
    # on two images of which one has an overlap)
    png = render_plot(("pixel_overlap", {"labels": ["a", "b"], "pixels": [[0, 5], [0, 0]]}))
    assert png[:4] == b"\x89PNG"

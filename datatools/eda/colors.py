"""The colours of the report: one per class value, the same in plots and overlays."""

from __future__ import annotations

import colorsys

import numpy as np
import numpy.typing as npt

__all__ = ["class_colors", "hex_color"]

# matplotlib's tab10 then the lighter tab20 shades: distinct on white and on photos
_BASE = [
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf",
    "#aec7e8", "#ffbb78", "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7", "#dbdb8d", "#9edae5",
]


def class_colors(n_classes: int) -> npt.NDArray[np.uint8]:
    """(256, 3) uint8 RGB colours indexed by mask value: 0 black, 1..K distinct colours, 255 white.

    Example:
        >>> class_colors(3)[1].tolist()
        [31, 119, 180]
    """
    colors = np.zeros((256, 3), dtype=np.uint8)
    for value in range(1, min(n_classes, 254) + 1):
        if value <= len(_BASE):
            h = _BASE[value - 1]
            colors[value] = [int(h[k:k + 2], 16) for k in (1, 3, 5)]
        else:  # golden-ratio hues for the classes past the table
            r, g, b = colorsys.hsv_to_rgb((value * 0.618033988749895) % 1.0, 0.65, 0.9)
            colors[value] = [round(r * 255), round(g * 255), round(b * 255)]
    colors[255] = 255
    return colors


def hex_color(rgb: npt.NDArray[np.uint8] | tuple[int, int, int]) -> str:
    """``#rrggbb`` of an RGB triple."""
    r, g, b = (int(v) for v in rgb)
    return f"#{r:02x}{g:02x}{b:02x}"

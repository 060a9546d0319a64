"""Outlier images: robust scores over the per-image statistics ``eda`` computes.

Each statistic (brightness, contrast, channel means, sharpness, width, height, aspect) is scored by its
modified z-score (median and MAD) and an image is an outlier on it by ``eda``'s own rule
(:func:`datatools.eda.tables.robust_outliers`: robust and plain z-scores both high), so ``clean`` and the eda
report agree on what an outlier is. Near-constant images (no contrast at all: blank, black or white frames) are
their own kind.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from datatools.clean.findings import Finding
from datatools.clean.scan import ImageFacts
from datatools.core.issues import Severity
from datatools.eda.tables import OUTLIER_PLAIN_Z, OUTLIER_Z, modified_z, robust_outliers

__all__ = ["FEATURES", "NEAR_CONSTANT_CONTRAST", "outlier_findings"]

#: Standard deviation of the luma (0..255) under which an image is near-constant.
NEAR_CONSTANT_CONTRAST = 2.0
#: The statistics scored, and how a value is shown in a reason.
FEATURES = ("brightness", "contrast", "mean_r", "mean_g", "mean_b", "log_sharpness", "width", "height", "log_aspect")


def _feature_table(images: Sequence[dict[str, Any]], facts: Sequence[ImageFacts]) -> dict[str, np.ndarray]:
    n = len(facts)
    cols = {name: np.full(n, np.nan) for name in FEATURES}
    for i, f in enumerate(facts):
        if f.pixels is None:
            continue
        p = f.pixels
        cols["brightness"][i], cols["contrast"][i] = p.brightness, p.contrast
        cols["mean_r"][i], cols["mean_g"][i], cols["mean_b"][i] = p.mean
        cols["log_sharpness"][i] = math.log1p(f.sharpness)
        w, h = float(images[i]["width"]), float(images[i]["height"])
        cols["width"][i], cols["height"][i], cols["log_aspect"][i] = w, h, math.log(w / h)
    return cols


def outlier_findings(
    images: Sequence[dict[str, Any]], facts: Sequence[ImageFacts], z: float = OUTLIER_Z,
    plain_z: float = OUTLIER_PLAIN_Z,
) -> tuple[list[Finding], dict[str, Any]]:
    """Outlier and near-constant images, plus the scored statistics (one row per image) for the tables.

    Args:
        images: the image records, by position.
        facts: the scan's facts, by position.
        z: modified z-score above which a statistic is extreme.
        plain_z: plain z-score it must also exceed.

    Returns:
        The findings (score: the largest |modified z| among the image's extreme statistics) and the columns.

    Example:
        >>> found, columns = outlier_findings(ds.images, facts)
    """
    cols = _feature_table(images, facts)
    scores = {name: modified_z(values) for name, values in cols.items()}
    flags = {name: robust_outliers(values, z, plain_z) for name, values in cols.items()}
    found: list[Finding] = []
    for i, f in enumerate(facts):
        if f.pixels is None:
            continue
        img = images[i]
        if f.pixels.contrast < NEAR_CONSTANT_CONTRAST:
            found.append(Finding("near-constant-image", "no-contrast", Severity.ERROR,
                                 NEAR_CONSTANT_CONTRAST - f.pixels.contrast, img["id"], str(img["file_name"]),
                                 f"luma standard deviation {f.pixels.contrast:.2f} (of 255): the image is nearly "
                                 f"one colour (brightness {f.pixels.brightness:.1f})", image_index=i))
        extreme = [name for name in FEATURES if flags[name][i]]
        if not extreme:
            continue
        extreme.sort(key=lambda name: -abs(scores[name][i]))
        parts = [f"{name} {cols[name][i]:.3g} (median {np.nanmedian(cols[name]):.3g}, z {scores[name][i]:+.1f})"
                 for name in extreme]
        found.append(Finding("outlier-image", extreme[0], Severity.WARNING, float(abs(scores[extreme[0]][i])),
                             img["id"], str(img["file_name"]), "; ".join(parts), image_index=i))
    table = {name: cols[name] for name in FEATURES}
    table.update({f"z_{name}": scores[name] for name in FEATURES})
    return found, table

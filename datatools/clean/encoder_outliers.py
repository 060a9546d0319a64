"""Outlier images in a model's encoder feature space (``clean --ckpt``): the rings, implants and odd scenes that
no brightness statistic catches.

Each image is resized to the checkpoint's side and standardised as ``train predict`` does, the model is loaded
the way predict loads it (:class:`datatools_train.ensemble.Ensemble`), and the encoder's deepest feature map is
averaged over space into one vector per image. The vectors are centred on the dataset's mean vector (what every
image shares says nothing about which is odd) and scaled to unit length, and each image's score is its distance
to its k-th nearest other image (scikit-learn ``NearestNeighbors``): an image far from every other
is unlike the rest of the dataset. Scores whose modified z-score (median / MAD) and plain z-score are both high,
by ``eda``'s outlier rule on the high side, are findings. torch is imported only here, and only when asked for.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import partial
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from datatools.clean.findings import Finding
from datatools.core.errors import DatatoolsError
from datatools.core.imageio import read_image
from datatools.core.issues import Severity
from datatools.core.parallel import parallel_imap
from datatools.eda.tables import OUTLIER_Z, modified_z

__all__ = ["KNN_NEIGHBOURS", "encoder_features", "encoder_outlier_findings", "knn_distances"]

#: The neighbour whose distance is an image's score (the k-th nearest other image).
KNN_NEIGHBOURS = 5


def _resized(path: str, size: int) -> npt.NDArray[np.uint8]:
    """(3, size, size) uint8 RGB, resized as predict resizes (area interpolation)."""
    image = read_image(path)
    small = cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(small.transpose(2, 0, 1))


def encoder_features(
    ckpt: str | os.PathLike[str],
    paths: Sequence[str | os.PathLike[str]],
    *,
    device: str = "auto",
    batch: int = 16,
    workers: int | None = None,
    progress: bool = False,
) -> npt.NDArray[np.float32]:
    """One vector per image: the spatial mean of the checkpoint's deepest encoder feature map.

    Args:
        ckpt: a ``train fit`` checkpoint (its model must have an ``encoder``, as every smp model has).
        paths: the image files, in dataset order.
        device: torch device (auto, cpu, cuda).
        batch: images per forward pass.
        workers: processes that read and resize the images.
        progress: show a progress bar.

    Returns:
        (N, D) float32 features.

    Raises:
        DatatoolsError: the checkpoint's model has no encoder.

    Example:
        >>> features = encoder_features("runs/r18/best.pt", ["a.jpg", "b.jpg"], device="cpu")
    """
    import torch

    from datatools_train.ensemble import Ensemble
    from datatools_train.tta import normalize

    ens = Ensemble([ckpt], device=device)
    model, spec = ens.members[0]
    encoder = getattr(model, "encoder", None)
    if encoder is None:
        raise DatatoolsError(f"{ckpt}: the checkpoint's model has no encoder to take features from")
    out: list[npt.NDArray[np.float32]] = []
    pending: list[npt.NDArray[np.uint8]] = []

    def flush() -> None:
        x = normalize(torch.from_numpy(np.stack(pending)).to(ens.device), spec.mean, spec.std)
        with torch.inference_mode():
            deepest = encoder(x)[-1]
        out.append(deepest.float().mean(dim=(2, 3)).cpu().numpy().astype(np.float32))
        pending.clear()

    for small in parallel_imap(partial(_resized, size=spec.size), [str(p) for p in paths], workers=workers,
                               desc="clean: encoder features", progress=progress):
        pending.append(small)
        if len(pending) == batch:
            flush()
    if pending:
        flush()
    return np.concatenate(out) if out else np.zeros((0, 0), np.float32)


def knn_distances(features: npt.NDArray[np.floating[Any]], k: int = KNN_NEIGHBOURS) -> npt.NDArray[np.float64]:
    """Each row's Euclidean distance to its k-th nearest other row, after centring the rows on their mean and
    scaling them to unit length (k is capped at N - 1; all zeros for fewer than 2 rows).

    Example:
        >>> knn_distances(np.array([[1.0, 0], [1, 0.1], [1, -0.1], [1, 0.12], [0, 9]]), k=1).round(2).tolist()
        [0.0, 0.0, 0.0, 0.0, 1.41]
    """
    from sklearn.neighbors import NearestNeighbors

    n = len(features)
    if n < 2:
        return np.zeros(n)
    x = np.asarray(features, dtype=np.float64)
    x = x - x.mean(axis=0)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    k = min(k, n - 1)
    dist, _ = NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x)
    # column 0 is the row itself (or an exact copy of it, at the same distance 0): column k is the k-th other
    return np.asarray(dist[:, k], dtype=np.float64)


def encoder_outlier_findings(
    images: Sequence[dict[str, Any]], scores: npt.NDArray[np.float64], k: int = KNN_NEIGHBOURS, z: float = OUTLIER_Z,
) -> list[Finding]:
    """``outlier-feature`` findings: images whose kNN distance is far above the rest (modified z above ``z``, the
    high side only: being close to others is no fault).

    Example:
        >>> found = encoder_outlier_findings(ds.images, knn_distances(features))
    """
    if len(scores) < 3:
        return []
    robust = modified_z(scores)
    median = float(np.median(scores))
    found = []
    for i in np.nonzero(robust > z)[0].tolist():
        img = images[i]
        found.append(Finding("outlier-feature", "encoder-knn", Severity.WARNING, float(robust[i]), img["id"],
                             str(img["file_name"]), f"far from the other images in the model's encoder features: "
                             f"distance to the {k}th nearest {scores[i]:.3f} (median {median:.3f}, z "
                             f"{robust[i]:+.1f})", image_index=i))
    return found

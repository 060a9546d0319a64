"""``fit --normalize``: which mean and std the inputs are normalised with, recorded in the checkpoint.

``imagenet`` is what pretrained encoders expect; ``dataset`` takes the training images' own RGB mean and std, from an
``eda`` summary.json (``--stats``) or from one pass over the images; ``MEAN,STD`` gives them (two numbers for every
channel, or three means then three stds). The default, ``auto``, is ``imagenet`` with pretrained weights and
``dataset`` with ``--weights none``. ``predict``, ``evaluate`` and ``pseudo-label`` read the values from the
checkpoint's spec, so nothing else has to be told.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError
from datatools.core.imageio import read_image
from datatools.core.parallel import parallel_imap

from .config import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["NORMALIZE_CHOICES", "channel_moments", "dataset_mean_std", "parse_normalize", "resolve_normalization",
           "stats_mean_std"]

NORMALIZE_CHOICES = ("auto", "imagenet", "dataset")

Triple = tuple[float, float, float]


def parse_normalize(value: str) -> tuple[str, Triple | None, Triple | None]:
    """``(kind, mean, std)``: kind is auto, imagenet, dataset or ``values`` (mean and std given).

    Raises:
        ValueError: neither a choice nor 2 or 6 numbers with stds > 0.

    Example:
        >>> parse_normalize("0.5,0.25")
        ('values', (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    """
    text = value.strip().lower()
    if text in NORMALIZE_CHOICES:
        return text, None, None
    try:
        numbers = [float(v) for v in text.split(",")]
    except ValueError:
        raise ValueError(f"expected auto, imagenet, dataset, MEAN,STD or 3 means and 3 stds, got {value!r}") from None
    if len(numbers) == 2:
        numbers = [numbers[0]] * 3 + [numbers[1]] * 3
    if len(numbers) != 6 or min(numbers[3:]) <= 0:
        raise ValueError(f"expected MEAN,STD or 3 means and 3 stds (stds > 0, images on 0..1), got {value!r}")
    return "values", (numbers[0], numbers[1], numbers[2]), (numbers[3], numbers[4], numbers[5])


def stats_mean_std(path: str | os.PathLike[str]) -> tuple[Triple, Triple]:
    """The ``normalize`` mean and std of an ``eda`` summary.json.

    Raises:
        DatatoolsError: unreadable, or without a ``normalize`` entry (eda decoded no image).
    """
    try:
        norm = json.loads(Path(path).read_text(encoding="utf-8")).get("normalize")
        mean, std = norm["mean"], norm["std"]
        m = (float(mean[0]), float(mean[1]), float(mean[2]))
        s = (float(std[0]), float(std[1]), float(std[2]))
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        raise DatatoolsError(f"{path}: not an eda summary.json with a normalize mean and std") from None
    if min(s) <= 0:
        raise DatatoolsError(f"{path}: the normalize std must be > 0, got {list(s)}")
    return m, s


def channel_moments(path: str) -> tuple[list[float], list[float], int]:
    """Per-channel sum and sum of squares (0..255) and the pixel count of one image (a worker's job)."""
    image = read_image(path).reshape(-1, 3).astype(np.float64)
    return image.sum(axis=0).tolist(), (image * image).sum(axis=0).tolist(), int(image.shape[0])


def dataset_mean_std(datasets: Sequence[Dataset], *, workers: int | None = None,
                     progress: bool = True) -> tuple[Triple, Triple]:
    """RGB mean and std (0..1) over every pixel of every image, in one streaming pass (the values ``eda``
    reports as ``normalize``).

    Example:
        >>> dataset_mean_std([Dataset.load("train.json", "images/")], workers=1)
        ((0.52, 0.49, 0.45), (0.27, 0.26, 0.27))
    """
    paths = [str(ds.image_path(img)) for ds in datasets for img in ds.images]
    total, total_sq, pixels = np.zeros(3), np.zeros(3), 0
    for s, sq, n in parallel_imap(channel_moments, paths, workers=workers, desc="dataset mean/std",
                                  progress=progress):
        total += s
        total_sq += sq
        pixels += n
    if not pixels:
        raise DatatoolsError("no image to compute the dataset mean and std from")
    mean = total / pixels
    std = np.sqrt(np.maximum(total_sq / pixels - mean * mean, 0.0))
    m, s = (mean / 255.0).tolist(), (np.maximum(std, 1e-6) / 255.0).tolist()
    return (m[0], m[1], m[2]), (s[0], s[1], s[2])


def resolve_normalization(value: str, weights: str, datasets: Sequence[Dataset], *,
                          stats: str | os.PathLike[str] | None = None, workers: int | None = None,
                          progress: bool = True) -> tuple[str, Triple, Triple]:
    """``(name, mean, std)`` of ``--normalize``: name is imagenet, dataset or the values as given.

    Args:
        value: ``--normalize``.
        weights: ``--weights`` (``none`` makes ``auto`` mean ``dataset``).
        datasets: the training images, for ``dataset`` without ``stats``.
        stats: an eda summary.json to take the dataset values from.
        workers: processes of the one pass.
        progress: progress bar of the one pass.
    """
    kind, mean, std = parse_normalize(value)
    if kind == "auto":
        kind = "dataset" if weights == "none" else "imagenet"
    if kind == "imagenet":
        return "imagenet", IMAGENET_MEAN, IMAGENET_STD
    if kind == "dataset":
        m, s = stats_mean_std(stats) if stats is not None else dataset_mean_std(datasets, workers=workers,
                                                                                 progress=progress)
        return "dataset", m, s
    assert mean is not None and std is not None
    return value, mean, std

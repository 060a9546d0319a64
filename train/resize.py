"""The trainer's resizes, torch-free: what the model is fed (image and mask down to its side) and how its
probabilities come back to the image's size.

One place for the interpolations, so that ``datatools eda --train-size`` (the resolution ceiling) replays exactly
what training and prediction do without importing torch: :func:`mask_to_model` is the mask resize of
:func:`datatools_train.augment.build_transform`, and :func:`probs_to_image` is, in numpy, the bilinear resize
(``align_corners=False``) that :meth:`datatools_train.ensemble.Ensemble.predictions` applies to the probabilities
(the tests hold the two to each other).
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

__all__ = ["IMAGE_INTERPOLATION", "MASK_INTERPOLATION", "decide_probs", "mask_to_model", "probs_to_image",
           "round_trip"]

#: Images go down to the model's side by area averaging.
IMAGE_INTERPOLATION = cv2.INTER_AREA
#: Masks go down by nearest neighbour, so class values and the ignore value 255 survive.
MASK_INTERPOLATION = cv2.INTER_NEAREST


def _resize(array: npt.NDArray[Any], size_wh: tuple[int, int], interpolation: int) -> npt.NDArray[Any]:
    out = cv2.resize(array, size_wh, interpolation=interpolation)
    return out[:, :, None] if array.ndim == 3 and out.ndim == 2 else out  # OpenCV drops a single channel


def mask_to_model(mask: npt.NDArray[Any], size: int) -> npt.NDArray[Any]:
    """A target mask as the trainer feeds it: (H, W) class values or (H, W, K) planes, to ``size`` x ``size``.

    Example:
        >>> mask_to_model(np.zeros((640, 480), np.uint8), 128).shape
        (128, 128)
    """
    return _resize(mask, (size, size), MASK_INTERPOLATION)


def probs_to_image(probs: npt.NDArray[np.float32], size_hw: tuple[int, int]) -> npt.NDArray[np.float32]:
    """(C, S, S) probabilities at the model's side to (C, H, W) at the image's, bilinearly (half-pixel centres,
    the ``align_corners=False`` of the predict path).

    Example:
        >>> probs_to_image(np.ones((3, 128, 128), np.float32), (640, 480)).shape
        (3, 640, 480)
    """
    planes = np.ascontiguousarray(np.asarray(probs, dtype=np.float32).transpose(1, 2, 0))
    return np.ascontiguousarray(_up(planes, size_hw).transpose(2, 0, 1))


def _up(planes_hwc: npt.NDArray[np.float32], size_hw: tuple[int, int]) -> npt.NDArray[np.float32]:
    h, w = size_hw
    return _resize(planes_hwc, (w, h), cv2.INTER_LINEAR).reshape(h, w, -1)


def decide_probs(full: npt.NDArray[np.float32], multilabel: bool, threshold: float = 0.5) -> npt.NDArray[Any]:
    """Probabilities to a mask as predict decides: argmax (uint8 class values) or ``>= threshold`` (bool planes)."""
    if multilabel:
        return full >= threshold
    return full.argmax(axis=0).astype(np.uint8)


def round_trip(mask: npt.NDArray[Any], size: int, multilabel: bool) -> npt.NDArray[Any]:
    """What a perfect model trained at ``size`` returns for ``mask``: fed down, one-hot at the model's side, back up.

    Multiclass (H, W) class values: the model's one-hot probabilities over ``0..max`` are resized back and the
    argmax taken; ignore pixels (255) count as background in the model's output (it never predicts 255).
    Multilabel (K, H, W) bool planes: each plane's 0/1 probability back up and thresholded at 0.5.

    Example:
        >>> m = np.zeros((640, 640), np.uint8); m[100:110, 100:300] = 1
        >>> (round_trip(m, 640, False) == m).all()
        True
    """
    h, w = mask.shape[-2:]
    if multilabel:  # channels last all the way: OpenCV's layout, and a contiguous threshold
        small = mask_to_model(np.ascontiguousarray(mask.transpose(1, 2, 0)).astype(np.uint8), size)
        back = _up(small.reshape(size, size, -1).astype(np.float32), (h, w)) >= 0.5
        return np.ascontiguousarray(back.transpose(2, 0, 1))
    small = mask_to_model(mask, size)
    small = np.where(small == 255, 0, small)
    # only the values present get a channel: the others are 0 everywhere, below the winner (the channels sum to 1)
    values = np.unique(small)
    up = _up((small[:, :, None] == values).astype(np.float32), (h, w))
    best, index = up[:, :, 0].copy(), np.zeros((h, w), np.uint8)
    for c in range(1, len(values)):  # argmax over a few channels; strict > keeps the first of a tie, as argmax
        higher = up[:, :, c] > best
        index[higher] = c
        np.maximum(best, up[:, :, c], out=best)
    return values[index].astype(np.uint8)

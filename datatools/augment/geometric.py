"""Offline flips, 90-degree rotations and rotations by any angle.

Flips and multiples of 90 degrees are pure index operations, so labels are exact. Other angles warp the image
bilinearly and each object's mask bilinearly with a 0.5 threshold (a smooth boundary rather than a stair-stepped
nearest-neighbour one), about the image centre; corners left empty are padded with ``fill`` and labelled
background. Positive angles turn counter-clockwise, as ``np.rot90`` and ``cv2.getRotationMatrix2D`` do.

Mirrors rename lateral classes (:mod:`datatools.core.lateral`): a horizontal flip swaps left/right pairs, a vertical
one top/bottom pairs, a half turn both; quarter turns on datasets with pairs need a named rule and keep labels.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, cast

import cv2
import numpy as np
import numpy.typing as npt

from datatools.augment._frames import PixelMove
from datatools.augment.sampling import SourceIndex, plan_each_source
from datatools.augment.types import OutputPlan, Sample, empty_masks, relabel_objects
from datatools.core.lateral import LateralPairs, rotation_map
from datatools.core.rle_counts import flip_rle

__all__ = [
    "FlipConfig",
    "FlipDirection",
    "FlipParams",
    "RotateConfig",
    "RotateParams",
    "apply_flip",
    "apply_rotate",
    "flip_move",
    "plan_flip",
    "plan_rotate",
    "rotation_matrix",
    "sample_flip_params",
    "sample_rotate_params",
]


class FlipDirection(str, Enum):
    """Which way to flip: horizontal (left-right), vertical (up-down), or both (a 180-degree turn)."""

    H = "h"
    V = "v"
    HV = "hv"


@dataclass(frozen=True)
class FlipConfig:
    """Options of ``datatools augment flip``: every source image is flipped in each of ``directions``.

    Attributes:
        directions: h, v and/or hv.
        lateral: the class pairs a mirror swaps (``run_augment`` resolves ``--lateral-pairs`` into it).
    """

    directions: tuple[FlipDirection, ...] = (FlipDirection.H,)
    lateral: LateralPairs = field(default_factory=LateralPairs)

    def __post_init__(self) -> None:
        if not self.directions:
            raise ValueError("give at least one flip direction (h, v, hv)")
        object.__setattr__(self, "directions", tuple(FlipDirection(d) for d in self.directions))


@dataclass(frozen=True)
class FlipParams:
    direction: FlipDirection
    lateral: LateralPairs = field(default_factory=LateralPairs)

    @property
    def categories(self) -> dict[int, int]:
        """Category id -> id after this flip (the lateral pairs it swaps)."""
        d = FlipDirection(self.direction)
        return self.lateral.mirror_map(d in (FlipDirection.H, FlipDirection.HV),
                                       d in (FlipDirection.V, FlipDirection.HV))


@dataclass(frozen=True)
class RotateConfig:
    """Options of ``datatools augment rotate``.

    Attributes:
        angles: every source image is rotated by each of these angles (degrees, counter-clockwise).
        angle_range: when set, one angle per output drawn uniformly from this range instead of ``angles``.
        expand: grow the canvas so that nothing is cut off (otherwise the output keeps the input size).
        fill: grey value of the padded corners.
        min_area: objects with fewer pixels after the rotation are dropped.
        lateral: the class pairs a half turn swaps (``run_augment`` resolves ``--lateral-pairs`` into it).
    """

    angles: tuple[float, ...] = (90.0,)
    angle_range: tuple[float, float] | None = None
    expand: bool = False
    fill: int = 0
    min_area: int = 16
    lateral: LateralPairs = field(default_factory=LateralPairs)

    def possible_angles(self) -> list[float]:
        """Every angle an output may get (the range sampled every degree, both ends included)."""
        if self.angle_range is None:
            return [float(a) for a in self.angles]
        lo, hi = self.angle_range
        return [*np.arange(lo, hi, 1.0).tolist(), float(hi)]

    def __post_init__(self) -> None:
        if self.angle_range is None and not self.angles:
            raise ValueError("give angles or angle_range")
        if self.angle_range is not None and self.angle_range[0] > self.angle_range[1]:
            raise ValueError(f"angle_range must be (low, high), got {self.angle_range}")
        if not 0 <= self.fill <= 255:
            raise ValueError(f"fill must be a grey value 0..255, got {self.fill}")
        if self.min_area < 1:
            raise ValueError(f"min_area must be >= 1 pixel, got {self.min_area}")


@dataclass(frozen=True)
class RotateParams:
    angle: float
    expand: bool = False
    fill: int = 0
    min_area: int = 16
    lateral: LateralPairs = field(default_factory=LateralPairs)


def plan_flip(index: SourceIndex, config: FlipConfig, count: int | None,
              rng: np.random.Generator) -> list[OutputPlan]:
    """One output per source image and direction."""
    return plan_each_source(index, [{"direction": d.value} for d in config.directions], count, rng)


def sample_flip_params(rng: np.random.Generator, samples: Sequence[Sample], config: FlipConfig,
                       choice: Mapping[str, Any]) -> FlipParams:
    """The planned direction, or a random one of ``config.directions``."""
    if "direction" in choice:
        return FlipParams(FlipDirection(choice["direction"]), config.lateral)
    return FlipParams(config.directions[int(rng.integers(len(config.directions)))], config.lateral)


def flip_move(params: FlipParams, size_hw: tuple[int, int]) -> PixelMove:
    """Where a flip puts the pixels of an image of ``size_hw`` (for the RLE-to-RLE path of the runner).

    Example:
        >>> flip_move(FlipParams(FlipDirection.H), (4, 6)).box((0, 0, 2, 1))
        (0, 5, 2, 6)
    """
    d = FlipDirection(params.direction)
    h, w = size_hw
    fy, fx = d in (FlipDirection.V, FlipDirection.HV), d in (FlipDirection.H, FlipDirection.HV)
    code = {FlipDirection.H: 1, FlipDirection.V: 0, FlipDirection.HV: -1}[d]
    ys, xs = slice(None, None, -1 if fy else 1), slice(None, None, -1 if fx else 1)

    def box(b: tuple[int, int, int, int]) -> tuple[int, int, int, int]:
        y0, x0, y1, x1 = b
        return (h - y1, w - x1, h - y0, w - x0) if fy and fx else (h - y1, x0, h - y0, x1) if fy \
            else (y0, w - x1, y1, w - x0)

    return PixelMove(image=lambda image: cast("npt.NDArray[np.uint8]", cv2.flip(image, code)),
                     frames=lambda frames: frames[ys, xs], box=box, rle=lambda rle: flip_rle(rle, fy, fx),
                     size_hw=(h, w), categories=params.categories)


def apply_flip(samples: Sequence[Sample], params: FlipParams) -> Sample:
    """Flip image and masks with index operations (exact); lateral pairs swap their classes.

    Example:
        >>> out = apply_flip([sample], FlipParams(FlipDirection.H))
        >>> bool((out.masks == sample.masks[:, :, ::-1]).all())
        True
    """
    (s,) = samples
    move = flip_move(params, s.size_hw)
    boxes = tuple(None if box is None else move.box(box) for box in s.boxes_yxyx)  # mirror places
    masks = np.moveaxis(move.frames(np.moveaxis(s.masks, 0, -1)), -1, 0)  # a mirrored view: nothing is copied
    return Sample(move.image(s.image), masks, relabel_objects(s.objects, move.categories), s.image_id, boxes)


def plan_rotate(index: SourceIndex, config: RotateConfig, count: int | None,
                rng: np.random.Generator) -> list[OutputPlan]:
    """One output per source image and angle (or per source image, with ``angle_range``)."""
    choices = [{}] if config.angle_range is not None else [{"angle": float(a)} for a in config.angles]
    return plan_each_source(index, choices, count, rng)


def sample_rotate_params(rng: np.random.Generator, samples: Sequence[Sample], config: RotateConfig,
                         choice: Mapping[str, Any]) -> RotateParams:
    """The planned angle, or one drawn uniformly from ``config.angle_range``."""
    if "angle" in choice:
        angle = float(choice["angle"])
    elif config.angle_range is not None:
        angle = float(rng.uniform(*config.angle_range))
    else:
        angle = float(config.angles[int(rng.integers(len(config.angles)))])
    return RotateParams(angle, config.expand, config.fill, config.min_area, config.lateral)


def rotation_matrix(size_hw: tuple[int, int], angle: float, expand: bool) -> tuple[npt.NDArray[np.float64],
                                                                                    tuple[int, int]]:
    """The 2x3 matrix (pixel-centre coordinates) turning an image of ``size_hw`` by ``angle`` degrees about its
    centre, and the output size (the same, or the bounding size with ``expand``).

    Example:
        >>> m, out_hw = rotation_matrix((480, 640), 15.0, expand=True)
    """
    h, w = size_hw
    m = np.asarray(cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0), dtype=np.float64)
    if not expand:
        return m, (h, w)
    cos, sin = abs(m[0, 0]), abs(m[0, 1])
    # round first so that 640.0000000001 does not become 641
    out_w = math.ceil(round(h * sin + w * cos, 6))
    out_h = math.ceil(round(h * cos + w * sin, 6))
    m[0, 2] += (out_w - w) / 2
    m[1, 2] += (out_h - h) / 2
    return m, (out_h, out_w)


def _warp_mask(mask: npt.NDArray[np.bool_], m: npt.NDArray[np.float64],
               out_hw: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Warp one mask bilinearly with a 0.5 threshold, working only around the object's bounding box."""
    out = np.zeros(out_hw, dtype=bool)
    ys, xs = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    if not len(ys):
        return out
    h, w = mask.shape
    sy0, sy1 = max(0, int(ys[0]) - 1), min(h, int(ys[-1]) + 2)
    sx0, sx1 = max(0, int(xs[0]) - 1), min(w, int(xs[-1]) + 2)
    corners = np.array([[sx0, sy0, 1], [sx1, sy0, 1], [sx0, sy1, 1], [sx1, sy1, 1]], dtype=np.float64) @ m.T
    dx0, dy0 = (max(0, int(math.floor(v)) - 1) for v in corners.min(axis=0))
    dx1 = min(out_hw[1], int(math.ceil(corners[:, 0].max())) + 2)
    dy1 = min(out_hw[0], int(math.ceil(corners[:, 1].max())) + 2)
    if dx1 <= dx0 or dy1 <= dy0:
        return out
    local = m.copy()
    local[:, 2] = m[:, :2] @ np.array([sx0, sy0], dtype=np.float64) + m[:, 2] - np.array([dx0, dy0])
    sub = mask[sy0:sy1, sx0:sx1].astype(np.uint8) * 255
    warped = cv2.warpAffine(sub, local, (dx1 - dx0, dy1 - dy0), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    out[dy0:dy1, dx0:dx1] = warped >= 128
    return out


def apply_rotate(samples: Sequence[Sample], params: RotateParams) -> Sample:
    """Rotate image and masks: exact for multiples of 90 degrees; at other angles objects left under
    ``min_area`` pixels are dropped. A half turn (within 45 degrees of 180) swaps lateral pairs, as a horizontal
    and a vertical flip do.

    Example:
        >>> out = apply_rotate([sample], RotateParams(90.0))
        >>> bool((out.masks == np.rot90(sample.masks, 1, axes=(1, 2))).all())
        True
    """
    (s,) = samples
    objects = relabel_objects(s.objects, rotation_map(params.lateral, params.angle))
    angle = params.angle % 360.0
    if angle % 90.0 == 0.0:
        k = int(angle // 90.0)
        turn = (None, cv2.ROTATE_90_COUNTERCLOCKWISE, cv2.ROTATE_180, cv2.ROTATE_90_CLOCKWISE)[k]
        image = s.image.copy() if turn is None else cast("npt.NDArray[np.uint8]", cv2.rotate(s.image, turn))
        h, w = s.size_hw
        out_h, out_w = (w, h) if k % 2 else (h, w)
        masks = empty_masks(len(s.objects), out_h, out_w)
        boxes: list[tuple[int, int, int, int] | None] = []
        for i, box in enumerate(s.boxes_yxyx):  # each object's box turns to its new place
            if box is None:
                boxes.append(None)
                continue
            y0, x0, y1, x1 = box
            new = {1: (w - x1, y0, w - x0, y1), 2: (h - y1, w - x1, h - y0, w - x0), 3: (x0, h - y1, x1, h - y0),
                   0: box}[k]
            masks[i, new[0]:new[2], new[1]:new[3]] = np.rot90(s.masks[i, y0:y1, x0:x1], k)
            boxes.append(new)
        return Sample(image, masks, objects, s.image_id, tuple(boxes))  # areas are unchanged: nothing to drop
    m, out_hw = rotation_matrix(s.size_hw, params.angle, params.expand)
    warped = cv2.warpAffine(s.image, m, (out_hw[1], out_hw[0]), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=(params.fill,) * 3)
    masks = empty_masks(len(s.masks), *out_hw)
    for i, mask in enumerate(s.masks):
        masks[i] = _warp_mask(mask, m, out_hw)
    keep = np.array([np.count_nonzero(m) for m in masks]) >= max(1, params.min_area)
    return Sample(cast("npt.NDArray[np.uint8]", warped), masks, objects, s.image_id).keep(keep)

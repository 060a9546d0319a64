"""Copy-paste: objects of chosen (rare) classes cut out with their masks and pasted onto other images.

Each pasted object is flipped, scaled and rotated about its centre, then placed where it covers at most
``max_occlusion`` of every object already there (tried ``max_attempts`` times, else that paste is skipped). The
covered pixels are removed from the masks underneath, and objects left with less than ``min_visible`` of their
area (or under ``min_area`` pixels) are dropped. Without scaling or rotation the paste is a pure index operation.
A flipped object of a lateral class is pasted as its pair (a mirrored left lung is a right lung:
:mod:`datatools.core.lateral`).
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

from datatools.augment._load import DONOR_MARGIN
from datatools.augment.sampling import SourceIndex, index_rarity, plan_rare_pastes, resolve_classes
from datatools.augment.types import OutputPlan, Sample, empty_masks, relabel_objects
from datatools.core.errors import InvalidDatasetError
from datatools.core.lateral import LateralPairs
from datatools.core.rarity import RARE_THRESHOLD

__all__ = [
    "Blend",
    "CopyPasteConfig",
    "CopyPasteParams",
    "Paste",
    "apply_copy_paste",
    "paste_geometry",
    "plan_copy_paste",
    "sample_copy_paste_params",
]


class Blend(str, Enum):
    """How a pasted object meets its new background: a hard edge, or a Gaussian-feathered one."""

    NONE = "none"
    GAUSSIAN = "gaussian"


@dataclass(frozen=True)
class CopyPasteConfig:
    """Options of ``datatools augment copy-paste``.

    Attributes:
        classes: class names to paste, or ``"auto"`` for the rare classes.
        rare_threshold: ``auto``: a class is rare when fewer images hold it than this fraction of the images
            holding the most common class (:mod:`datatools.core.rarity`).
        objects_range: objects pasted per output image (min, max).
        scale_range: scale jitter of each pasted object.
        flip_prob: probability of a horizontal flip of each pasted object.
        angle_range: rotation of each pasted object, degrees (``(0, 0)``: none).
        blend: ``none`` or ``gaussian`` edges.
        sigma: the Gaussian blend's sigma, pixels.
        max_occlusion: a placement may cover at most this fraction of any object already in the image.
        min_visible: objects left with less than this fraction of their area are dropped.
        min_area: objects left under this many pixels are dropped.
        max_attempts: placements tried per object before it is skipped.
        target_share: paste until every chosen class is in this share of the images (sources + outputs).
        target_images: paste until every chosen class is in this many images (sources + outputs).
        lateral: the class pairs a flipped paste swaps (``run_augment`` resolves ``--lateral-pairs`` into it).
    """

    classes: str | tuple[str, ...] = "auto"
    rare_threshold: float = RARE_THRESHOLD
    objects_range: tuple[int, int] = (1, 3)
    scale_range: tuple[float, float] = (0.75, 1.25)
    flip_prob: float = 0.5
    angle_range: tuple[float, float] = (0.0, 0.0)
    blend: Blend = Blend.NONE
    sigma: float = 1.0
    max_occlusion: float = 0.3
    min_visible: float = 0.5
    min_area: int = 16
    max_attempts: int = 30
    target_share: float | None = None
    target_images: int | None = None
    lateral: LateralPairs = field(default_factory=LateralPairs)

    def __post_init__(self) -> None:
        if not 0.0 <= self.rare_threshold <= 1.0:
            raise ValueError(f"rare_threshold must lie in [0, 1], got {self.rare_threshold:g}")
        object.__setattr__(self, "blend", Blend(self.blend))
        lo, hi = self.objects_range
        if not 1 <= lo <= hi:
            raise ValueError(f"objects_range must be (min, max) with 1 <= min <= max, got {self.objects_range}")
        if not 0 < self.scale_range[0] <= self.scale_range[1]:
            raise ValueError(f"scale_range must be (low, high) with 0 < low <= high, got {self.scale_range}")
        if self.angle_range[0] > self.angle_range[1]:
            raise ValueError(f"angle_range must be (low, high), got {self.angle_range}")
        for name in ("flip_prob", "max_occlusion", "min_visible"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be within [0, 1], got {getattr(self, name)}")
        if self.sigma <= 0 or self.min_area < 1 or self.max_attempts < 1:
            raise ValueError("sigma must be > 0, min_area >= 1 and max_attempts >= 1")
        if self.target_share is not None and self.target_images is not None:
            raise ValueError("give target_share or target_images, not both")
        if self.target_share is not None and not 0 < self.target_share < 1:
            raise ValueError(f"target_share must be within (0, 1), got {self.target_share}")
        if self.target_images is not None and self.target_images < 1:
            raise ValueError(f"target_images must be >= 1, got {self.target_images}")


@dataclass(frozen=True)
class Paste:
    """One pasted object.

    Attributes:
        donor: index of the donor sample (1 or more; sample 0 is the target image).
        object: index of the object in the donor sample.
        flip: flipped left-right about its own centre.
        scale: scale factor.
        angle: rotation about its centre, degrees counter-clockwise.
        matrix: 2x3 affine map from donor pixel coordinates to output pixel coordinates (pixel centres).
        box_yxyx: where the patch lands in the output, ``(y0, x0, y1, x1)`` end exclusive.
        annotation_id: the source annotation of the object (provenance).
    """

    donor: int
    object: int
    flip: bool
    scale: float
    angle: float
    matrix: tuple[tuple[float, float, float], tuple[float, float, float]]
    box_yxyx: tuple[int, int, int, int]
    annotation_id: Any = None


@dataclass(frozen=True)
class CopyPasteParams:
    """Every paste that found a place, in paste order (later ones on top), and how objects are kept."""

    pastes: tuple[Paste, ...]
    skipped: int = 0
    blend: Blend = Blend.NONE
    sigma: float = 1.0
    min_visible: float = 0.5
    min_area: int = 16
    lateral: LateralPairs = field(default_factory=LateralPairs)


def plan_copy_paste(index: SourceIndex, config: CopyPasteConfig, count: int | None,
                    rng: np.random.Generator, counts: Mapping[int, int] | None = None,
                    n_images: int | None = None) -> list[OutputPlan]:
    """Outputs of one target image plus its donors (see :func:`datatools.augment.sampling.plan_rare_pastes`).

    Raises:
        InvalidDatasetError: no chosen class, or a chosen class without any object to copy.
    """
    classes = resolve_classes(config.classes, index, config.rare_threshold)
    if not classes:
        rarity = index_rarity(index, config.rare_threshold)
        raise InvalidDatasetError(f"{index.source}: no rare class to paste among the {len(index)} source images (rare: "
                                  f"{rarity.rule}); name the classes with --classes or raise --rare-threshold")
    empty = [index.names[c] for c in classes if not index.objects_of_class.get(c)]
    if empty:
        raise InvalidDatasetError(f"{index.source}: class(es) {', '.join(empty)} have no object to copy")
    plans = []
    for target, picks in plan_rare_pastes(rng, index, classes, config.objects_range, count=count,
                                          target_share=config.target_share, target_images=config.target_images,
                                          counts=counts, n_images=n_images):
        donors: dict[Any, list[Any]] = {}
        for image_id, ann_id, _ in picks:
            donors.setdefault(image_id, []).append(ann_id)
        plans.append(OutputPlan((target, *donors), (None, *(tuple(a) for a in donors.values()))))
    return plans


def _box_xyxy(sample: Sample, obj: int) -> tuple[int, int, int, int] | None:
    box = sample.boxes_yxyx[obj]
    return None if box is None else (box[1], box[0], box[3], box[2])


def paste_geometry(bbox_xyxy: tuple[int, int, int, int], flip: bool, scale: float,
                   angle: float) -> tuple[npt.NDArray[np.float64], tuple[int, int]]:
    """The 2x3 map from donor pixels to patch pixels and the patch size ``(h, w)`` for an object's box.

    Without scale or rotation the map is an integer shift (and mirror), so the patch is an exact copy.

    Example:
        >>> m, hw = paste_geometry((10, 20, 30, 50), flip=True, scale=1.0, angle=0.0)
        >>> hw
        (30, 20)
    """
    x0, y0, x1, y1 = bbox_xyxy
    w, h = x1 - x0, y1 - y0
    rad = math.radians(angle)
    cos, sin = math.cos(rad) * scale, math.sin(rad) * scale
    lin = np.array([[cos, sin], [-sin, cos]]) @ np.diag([-1.0 if flip else 1.0, 1.0])
    half_w = abs(lin[0, 0]) * w / 2 + abs(lin[0, 1]) * h / 2
    half_h = abs(lin[1, 0]) * w / 2 + abs(lin[1, 1]) * h / 2
    out_w, out_h = max(1, math.ceil(round(2 * half_w, 6))), max(1, math.ceil(round(2 * half_h, 6)))
    c_in = np.array([(x0 + x1 - 1) / 2, (y0 + y1 - 1) / 2])
    c_out = np.array([(out_w - 1) / 2, (out_h - 1) / 2])
    return np.hstack([lin, (c_out - lin @ c_in)[:, None]]), (out_h, out_w)


def _render_patch(donor: Sample, obj: int, local: npt.NDArray[np.float64], patch_hw: tuple[int, int],
                  exact: bool, with_image: bool = True) -> tuple[npt.NDArray[np.uint8] | None, npt.NDArray[np.bool_]]:
    """The patch (image, mask) of one donor object under the donor->patch map ``local``."""
    mask = donor.masks[obj]
    ph, pw = patch_hw
    if exact:  # an integer shift, possibly mirrored: index operations only
        flip = local[0, 0] < 0
        x0 = int(round(-local[0, 2])) if not flip else int(round(local[0, 2])) - (pw - 1)
        y0 = int(round(-local[1, 2]))
        xs = slice(x0 + pw - 1, x0 - 1 if x0 > 0 else None, -1) if flip else slice(x0, x0 + pw)
        ys = slice(y0, y0 + ph)
        return (donor.image[ys, xs] if with_image else None), mask[ys, xs]
    bbox = _box_xyxy(donor, obj)
    assert bbox is not None
    h, w = donor.size_hw
    m = DONOR_MARGIN  # what the warp reads around the box; all a donor sample holds (see load_donor)
    sx0, sy0 = max(0, bbox[0] - m), max(0, bbox[1] - m)
    sx1, sy1 = min(w, bbox[2] + m), min(h, bbox[3] + m)
    shifted = local.copy()
    shifted[:, 2] = local[:, :2] @ np.array([sx0, sy0], dtype=np.float64) + local[:, 2]
    sub = mask[sy0:sy1, sx0:sx1].astype(np.uint8) * 255
    warped = cv2.warpAffine(sub, shifted, (pw, ph), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT) >= 128
    image: npt.NDArray[np.uint8] | None = None
    if with_image:
        image = cast("npt.NDArray[np.uint8]", cv2.warpAffine(donor.image[sy0:sy1, sx0:sx1], shifted, (pw, ph),
                                                             flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE))
    return image, warped


def _local(paste: Paste) -> npt.NDArray[np.float64]:
    m = np.array(paste.matrix, dtype=np.float64)
    m[0, 2] -= paste.box_yxyx[1]
    m[1, 2] -= paste.box_yxyx[0]
    return m


class _Occupancy:
    """What is visible where while pastes are placed, kept in boxes: the target's objects lose what any paste
    covers (``cover``), a pasted object loses what later pastes cover (its own visible crop)."""

    def __init__(self, target: Sample) -> None:
        self.target = target
        self.cover = np.zeros(target.size_hw, dtype=bool)
        self.boxes: list[tuple[int, int, int, int] | None] = list(target.boxes_yxyx)  # (y0, x0, y1, x1)
        self.areas = [0 if b is None else int(np.count_nonzero(m[b[0]:b[2], b[1]:b[3]]))
                      for m, b in zip(target.masks, self.boxes, strict=True)]  # visible pixels per object
        # the visible crop of each pasted object (None for the target's: their masks and ``cover`` say it)
        self.crops: list[npt.NDArray[np.bool_] | None] = [None] * len(self.boxes)

    def _hits(self, box: tuple[int, int, int, int], patch: npt.NDArray[np.bool_]) -> list[tuple[int, Any, Any, int]]:
        """``(object, its crop window, patch window, newly covered pixels)`` for every object the patch touches."""
        y0, x0, y1, x1 = box
        hits = []
        for j, b in enumerate(self.boxes):
            if b is None or not self.areas[j]:
                continue
            iy0, ix0, iy1, ix1 = max(y0, b[0]), max(x0, b[1]), min(y1, b[2]), min(x1, b[3])
            if iy0 >= iy1 or ix0 >= ix1:
                continue
            window = (slice(iy0 - b[0], iy1 - b[0]), slice(ix0 - b[1], ix1 - b[1]))
            pw = (slice(iy0 - y0, iy1 - y0), slice(ix0 - x0, ix1 - x0))
            crop = self.crops[j]
            if crop is None:  # a target object: visible = mask and not covered yet
                visible = self.target.masks[j][iy0:iy1, ix0:ix1] & ~self.cover[iy0:iy1, ix0:ix1]
            else:
                visible = crop[window]
            hits.append((j, window, pw, int(np.count_nonzero(visible & patch[pw]))))
        return hits

    def fits(self, box: tuple[int, int, int, int], patch: npt.NDArray[np.bool_], max_occlusion: float) -> bool:
        return all(new <= max_occlusion * self.areas[j] for j, _, _, new in self._hits(box, patch))

    def place(self, box: tuple[int, int, int, int], patch: npt.NDArray[np.bool_]) -> None:
        for j, window, pw, new in self._hits(box, patch):
            self.areas[j] -= new
            crop = self.crops[j]
            if crop is not None:
                crop[window] &= ~patch[pw]
        y0, x0, y1, x1 = box
        self.cover[y0:y1, x0:x1] |= patch
        self.boxes.append(box)
        self.areas.append(int(np.count_nonzero(patch)))
        self.crops.append(patch.copy())


def sample_copy_paste_params(rng: np.random.Generator, samples: Sequence[Sample], config: CopyPasteConfig,
                             choice: Mapping[str, Any]) -> CopyPasteParams:
    """Draw flip, scale, angle and a placement for every donor object (``samples[1:]``) onto ``samples[0]``.

    Placements are drawn until one covers at most ``max_occlusion`` of the visible pixels of every object
    already there (the target's and the previously pasted ones); masks are read for that check, nothing is painted.

    Example:
        >>> params = sample_copy_paste_params(np.random.default_rng(0), [target, donor], CopyPasteConfig(), {})
    """
    target = samples[0]
    h, w = target.size_hw
    occupancy = _Occupancy(target)
    pastes, skipped = [], 0
    for d in range(1, len(samples)):
        for o in range(len(samples[d].objects)):
            flip = bool(rng.random() < config.flip_prob)
            scale = float(rng.uniform(*config.scale_range))
            angle = float(rng.uniform(*config.angle_range))
            bbox = _box_xyxy(samples[d], o)
            if bbox is None:
                skipped += 1
                continue
            geom, (ph, pw) = paste_geometry(bbox, flip, scale, angle)
            if ph > h or pw > w:  # too big for the target: shrink it to fit
                scale *= min(h / ph, w / pw) * 0.999
                geom, (ph, pw) = paste_geometry(bbox, flip, scale, angle)
            _, patch = _render_patch(samples[d], o, geom, (ph, pw), scale == 1.0 and angle == 0.0, with_image=False)
            placed = None
            for _ in range(config.max_attempts):
                y0, x0 = int(rng.integers(0, h - ph + 1)), int(rng.integers(0, w - pw + 1))
                if occupancy.fits((y0, x0, y0 + ph, x0 + pw), patch, config.max_occlusion):
                    placed = (y0, x0)
                    break
            if placed is None:
                skipped += 1
                continue
            y0, x0 = placed
            occupancy.place((y0, x0, y0 + ph, x0 + pw), patch)
            matrix = geom + np.array([[0, 0, x0], [0, 0, y0]], dtype=np.float64)
            rows = cast("tuple[tuple[float, float, float], tuple[float, float, float]]",
                        tuple(tuple(float(v) for v in row) for row in matrix))
            pastes.append(Paste(d, o, flip, scale, angle, rows, (y0, x0, y0 + ph, x0 + pw),
                                samples[d].objects[o].source_annotation_id))
    return CopyPasteParams(tuple(pastes), skipped, config.blend, config.sigma, config.min_visible, config.min_area,
                           config.lateral)


def apply_copy_paste(samples: Sequence[Sample], params: CopyPasteParams) -> Sample:
    """Paste the objects in order onto ``samples[0]``, cut the covered pixels out of the masks underneath, and drop
    the objects that lost pixels (and pasted ones) left under ``min_visible`` of their area or ``min_area`` pixels.
    A flipped paste of a lateral class takes its pair's class.

    Work is done in boxes: output planes start empty and only object boxes and paste boxes are written.

    Example:
        >>> out = apply_copy_paste([target, donor], params)
    """
    target = samples[0]
    h, w = target.size_hw
    n_target = len(target.objects)
    image = target.image.copy()
    masks = empty_masks(n_target + len(params.pastes), h, w)
    boxes = list(target.boxes_yxyx)
    for j, b in enumerate(boxes):
        if b is not None:
            masks[j, b[0]:b[2], b[1]:b[3]] = target.masks[j, b[0]:b[2], b[1]:b[3]]
    before = [0 if b is None else int(np.count_nonzero(masks[j, b[0]:b[2], b[1]:b[3]])) for j, b in enumerate(boxes)]
    touched: set[int] = set()
    objects = list(target.objects)
    flipped = params.lateral.mirror_map(horizontal=True, vertical=False)
    for i, p in enumerate(params.pastes):
        donor = samples[p.donor]
        y0, x0, y1, x1 = p.box_yxyx
        patch_image, patch = _render_patch(donor, p.object, _local(p), (y1 - y0, x1 - x0),
                                           p.scale == 1.0 and p.angle == 0.0)
        assert patch_image is not None
        region = image[y0:y1, x0:x1]
        if Blend(params.blend) is Blend.GAUSSIAN:
            alpha = cv2.GaussianBlur(patch.astype(np.float32), (0, 0), params.sigma)[..., None]
            region[:] = np.round(alpha * patch_image + (1 - alpha) * region).astype(np.uint8)
        else:
            region[patch] = patch_image[patch]
        for j, b in enumerate(boxes):
            if b is not None and b[0] < y1 and y0 < b[2] and b[1] < x1 and x0 < b[3]:
                masks[j, y0:y1, x0:x1] &= ~patch
                touched.add(j)
        masks[n_target + i, y0:y1, x0:x1] = patch
        boxes.append(p.box_yxyx)
        before.append(int(np.count_nonzero(patch)))
        objects.extend(relabel_objects([donor.objects[p.object]], flipped if p.flip else {}))
    keep = np.ones(len(objects), dtype=bool)
    for j in touched | set(range(n_target, len(objects))):
        b = boxes[j]
        assert b is not None
        after = int(np.count_nonzero(masks[j, b[0]:b[2], b[1]:b[3]]))
        untouched = j < n_target and after == before[j]  # the target's own objects are not ours to drop
        keep[j] = untouched or (after >= params.min_visible * before[j] and after >= max(1, params.min_area))
    # the boxes still hold the masks (pastes only take pixels away), so no plane is scanned for its box
    return Sample(image, masks, tuple(objects), target.image_id, tuple(boxes)).keep(keep)

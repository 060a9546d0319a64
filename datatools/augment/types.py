"""The data an augment op works on: :class:`Sample` (pixels + per-object masks), plans and the op registry entry.

A kernel is a pure function ``(samples, params) -> Sample``; its parameters are drawn first by a
``sample_<op>_params(rng, samples, config, choice)`` function with an explicit ``np.random.Generator``. Masks are
carried per object, (N, H, W) bool, so objects of different classes may overlap and keep their overlaps.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["AugmentOp", "BoxedObjects", "ObjectRecord", "OutputPlan", "Sample", "empty_masks", "mask_box_yxyx",
           "params_to_json", "relabel_objects"]

Box = tuple[int, int, int, int]  # (y0, x0, y1, x1), end exclusive


def mask_box_yxyx(mask: npt.NDArray[np.bool_]) -> tuple[int, int, int, int] | None:
    """``(y0, x0, y1, x1)`` of an (H, W) mask, end exclusive, or None when it is empty.

    Example:
        >>> m = np.zeros((4, 5), bool); m[1:3, 2] = True
        >>> mask_box_yxyx(m)
        (1, 2, 3, 3)
    """
    xs = np.flatnonzero(mask.any(axis=0))
    if not len(xs):
        return None
    x0, x1 = int(xs[0]), int(xs[-1]) + 1
    ys = np.flatnonzero(mask[:, x0:x1].any(axis=1))
    return int(ys[0]), x0, int(ys[-1]) + 1, x1


def empty_masks(n: int, height: int, width: int) -> npt.NDArray[np.bool_]:
    """An all-False (N, H, W) mask stack laid out as pycocotools decodes and encodes it (each plane column-major),
    so that masks go from RLE to kernels and back to RLE without a transposing copy.

    Example:
        >>> empty_masks(2, 4, 5).shape
        (2, 4, 5)
    """
    return np.zeros((height, width, n), dtype=bool, order="F").transpose(2, 0, 1)


@dataclass(frozen=True)
class ObjectRecord:
    """One object of a :class:`Sample`: its class and the source annotation it comes from.

    Attributes:
        category_id: COCO category id.
        iscrowd: COCO ``iscrowd`` flag, carried through.
        source_image_id: id of the image the object was read from.
        source_annotation_id: id of the annotation it was read from.
    """

    category_id: int
    iscrowd: int = 0
    source_image_id: Any = None
    source_annotation_id: Any = None


def relabel_objects(objects: Sequence[ObjectRecord], mapping: Mapping[int, int]) -> tuple[ObjectRecord, ...]:
    """The objects with their classes mapped (a mirror swaps lateral pairs: :mod:`datatools.core.lateral`).

    Example:
        >>> [o.category_id for o in relabel_objects((ObjectRecord(1), ObjectRecord(3)), {1: 2, 2: 1})]
        [2, 3]
    """
    if not mapping:
        return tuple(objects)
    return tuple(dataclasses.replace(o, category_id=mapping[o.category_id]) if o.category_id in mapping else o
                 for o in objects)


@dataclass
class Sample:
    """One image with its objects, as kernels see it.

    Attributes:
        image: (H, W, 3) uint8 pixels: RGB for ops that look at colour (``AugmentOp.needs_rgb``), else in
            OpenCV's BGR order, as decoded and encoded (two colour conversions per output saved).
        masks: (N, H, W) bool, one plane per object (planes may overlap).
        objects: N records, ``objects[i]`` describes ``masks[i]``.
        image_id: id of the source image, or None for a synthetic one.
        known_boxes_yxyx: boxes that hold the objects' masks when the caller already has them (from the RLE, or
            where a kernel put the pixels; they need not be tight); otherwise :attr:`boxes_yxyx` computes them.

    Example:
        >>> s = Sample(np.zeros((4, 5, 3), np.uint8), np.zeros((1, 4, 5), bool), (ObjectRecord(3),))
        >>> s.size_hw
        (4, 5)
    """

    image: npt.NDArray[np.uint8]
    masks: npt.NDArray[np.bool_]
    objects: tuple[ObjectRecord, ...]
    image_id: Any = None
    known_boxes_yxyx: tuple[tuple[int, int, int, int] | None, ...] | None = field(default=None, repr=False,
                                                                                  compare=False)

    def __post_init__(self) -> None:
        img, masks = self.image, self.masks
        if not isinstance(img, np.ndarray) or img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            what = f"{img.shape} {img.dtype}" if isinstance(img, np.ndarray) else type(img).__name__
            raise ValueError(f"Sample.image must be (H, W, 3) uint8, but got {what}")
        if not isinstance(masks, np.ndarray) or masks.ndim != 3 or masks.dtype != np.bool_:
            what = f"{masks.shape} {masks.dtype}" if isinstance(masks, np.ndarray) else type(masks).__name__
            raise ValueError(f"Sample.masks must be (N, H, W) bool, but got {what}")
        if masks.shape[1:] != img.shape[:2]:
            raise ValueError(f"Sample.masks must be (N, {img.shape[0]}, {img.shape[1]}) like the image, "
                             f"but got shape {masks.shape}")
        self.objects = tuple(self.objects)
        if len(self.objects) != masks.shape[0]:
            raise ValueError(f"Sample has {masks.shape[0]} masks but {len(self.objects)} object records")
        if self.known_boxes_yxyx is not None and len(self.known_boxes_yxyx) != masks.shape[0]:
            raise ValueError(f"Sample has {masks.shape[0]} masks but {len(self.known_boxes_yxyx)} boxes")

    @property
    def size_hw(self) -> tuple[int, int]:
        """``(height, width)`` of the image."""
        return int(self.image.shape[0]), int(self.image.shape[1])

    @functools.cached_property
    def boxes_yxyx(self) -> tuple[tuple[int, int, int, int] | None, ...]:
        """Per object, a box ``(y0, x0, y1, x1)`` (end exclusive) that holds its mask: the known boxes when the
        sample was made with them, else the mask's bounding box (None when empty).

        Computed once per sample, so kernels can work on boxes instead of whole frames.
        """
        if self.known_boxes_yxyx is not None:
            return self.known_boxes_yxyx
        return tuple(mask_box_yxyx(m) for m in self.masks)

    def keep(self, which: npt.NDArray[np.bool_] | Sequence[bool]) -> Sample:
        """The same image with only the objects where ``which`` is True (the mask layout is kept)."""
        which = np.asarray(which, dtype=bool)
        if which.all():
            return self
        kept = BoxedObjects.from_sample(self).select(np.flatnonzero(which).tolist())  # only boxes are copied
        return Sample(self.image, kept.to_masks(self.size_hw), kept.objects, self.image_id, kept.boxes_yxyx)


@dataclass(frozen=True)
class BoxedObjects:
    """Objects held as their boxes and the mask pixels inside them, without (H, W) planes: what a kernel that only
    moves rectangles (mosaic and RICAP cuts) needs, at a fraction of the memory traffic.

    Attributes:
        objects: the N object records.
        boxes_yxyx: per object, the box that holds its mask (None for an empty mask).
        crops: per object, its mask inside its box, (y1 - y0, x1 - x0) bool (None with a None box).

    Example:
        >>> BoxedObjects.from_sample(sample).crops[0].shape
        (37, 52)
    """

    objects: tuple[ObjectRecord, ...]
    boxes_yxyx: tuple[Box | None, ...]
    crops: tuple[npt.NDArray[np.bool_] | None, ...]

    def __post_init__(self) -> None:
        if not len(self.objects) == len(self.boxes_yxyx) == len(self.crops):
            raise ValueError(f"BoxedObjects needs one box and one crop per object, got {len(self.objects)} objects, "
                             f"{len(self.boxes_yxyx)} boxes and {len(self.crops)} crops")

    @classmethod
    def from_sample(cls, sample: Sample) -> BoxedObjects:
        """The objects of ``sample``, each crop a view of its mask plane."""
        crops = tuple(None if b is None else sample.masks[k, b[0]:b[2], b[1]:b[3]]
                      for k, b in enumerate(sample.boxes_yxyx))
        return cls(sample.objects, sample.boxes_yxyx, crops)

    def select(self, indices: Sequence[int]) -> BoxedObjects:
        """Only the objects at ``indices``, in that order."""
        return BoxedObjects(tuple(self.objects[k] for k in indices), tuple(self.boxes_yxyx[k] for k in indices),
                            tuple(self.crops[k] for k in indices))

    def to_masks(self, size_hw: tuple[int, int]) -> npt.NDArray[np.bool_]:
        """The (N, H, W) mask stack (each crop pasted at its box, the rest False)."""
        masks = empty_masks(len(self.objects), *size_hw)
        for i, (box, crop) in enumerate(zip(self.boxes_yxyx, self.crops, strict=True)):
            if box is not None:
                masks[i, box[0]:box[2], box[1]:box[3]] = crop
        return masks


@dataclass(frozen=True)
class OutputPlan:
    """What one output image is made of, decided before any pixel is read (a ``parallel_map`` item).

    Attributes:
        sources: source image ids, the primary one (whose format and extra fields the output keeps) first.
        ann_ids: per source, the annotation ids to load, or None for all of them.
        choice: choices made when planning (JSON-safe), e.g. ``{"direction": "h"}`` for a flip.
    """

    sources: tuple[Any, ...]
    ann_ids: tuple[tuple[Any, ...] | None, ...] = ()
    choice: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.sources:
            raise ValueError("an output plan needs at least one source image")
        if not self.ann_ids:
            object.__setattr__(self, "ann_ids", (None,) * len(self.sources))
        if len(self.ann_ids) != len(self.sources):
            raise ValueError(f"ann_ids must have one entry per source ({len(self.sources)}), got {len(self.ann_ids)}")


_JSON_FIELDS: dict[type, tuple[str, ...]] = {}
_PLAIN = (int, float, str, bool, type(None))


def params_to_json(params: Any) -> Any:
    """A JSON-ready copy of a params dataclass (tuples become lists; fields with ``metadata={"json": False}``
    are left out).

    Example:
        >>> from datatools.augment.geometric import FlipParams
        >>> params_to_json(FlipParams("h"))
        {'direction': 'h'}
    """
    kind = type(params)
    if kind in _PLAIN:
        return params.value if isinstance(params, Enum) else params
    names = _JSON_FIELDS.get(kind)
    if names is None and dataclasses.is_dataclass(params) and not isinstance(params, type):
        names = _JSON_FIELDS[kind] = tuple(f.name for f in dataclasses.fields(params) if f.metadata.get("json", True))
    if names is not None:
        return {name: params_to_json(getattr(params, name)) for name in names}
    if isinstance(params, Enum):
        return params.value
    if isinstance(params, (list, tuple)):
        return [params_to_json(v) for v in params]
    if isinstance(params, Mapping):
        return {str(k): params_to_json(v) for k, v in params.items()}
    if isinstance(params, np.generic):
        return params.item()
    return params


Planner = Callable[[Any, Any, "int | None", np.random.Generator], list[OutputPlan]]
ParamSampler = Callable[[np.random.Generator, Sequence[Sample], Any, Mapping[str, Any]], Any]
Kernel = Callable[[Sequence[Sample], Any], Sample]


@dataclass(frozen=True)
class AugmentOp:
    """One entry of ``datatools.augment.OPS``.

    Attributes:
        name: the op's name (the CLI subcommand).
        config_type: the frozen dataclass holding the op's options (defaults live there).
        plan: ``plan(index, config, count, rng) -> list[OutputPlan]``: which sources each output uses.
        sample_params: ``sample_params(rng, samples, config, choice) -> params``: all randomness of one output.
        apply: ``apply(samples, params) -> Sample``: the deterministic kernel.
        summary: one line for help texts.
        windows: for ops whose parameters depend on the image sizes alone (mosaic, RICAP):
            ``windows(params) -> [(y0, x0, y1, x1) or None per source]``, the part of each source image the output
            can show. The runner then draws the parameters from image-only samples and rasterises only the
            objects that reach a window; the output is the same as with every object.
        needs_rgb: the kernel looks at colour (an albumentations pipeline): its samples are RGB. The others
            neither know nor care, so the runner gives them pixels in OpenCV's order and writes them back as they
            are.
        donors: the sources after the first only give objects (copy-paste): the runner reads them with
            ``load_donor``, which holds just the pixels around those objects and caches them.
        move: for ops that only move pixels (flips): ``move(params, size_hw) -> PixelMove``
            (:mod:`datatools.augment._frames`); the runner then moves each RLE instead of object masks. ``apply``
            must give the same output.
        cut: for ops that cut rectangles out of their sources (mosaic, RICAP; with ``windows``):
            ``cut(images, objects, params) -> (image, objects)`` on :class:`BoxedObjects`; the runner then hands the
            objects over as crops of their boxes and encodes the output from crops, so no (H, W) plane is made.
            ``apply`` must give the same output.
    """

    name: str
    config_type: type[Any]
    plan: Planner
    sample_params: ParamSampler
    apply: Kernel
    summary: str
    windows: Callable[[Any], Sequence[tuple[int, int, int, int] | None]] | None = None
    needs_rgb: bool = False
    donors: bool = False
    move: Callable[[Any, tuple[int, int]], Any] | None = None
    cut: Callable[[Sequence[npt.NDArray[np.uint8]], Sequence[BoxedObjects], Any],
                  tuple[npt.NDArray[np.uint8], BoxedObjects]] | None = None

    def run(self, samples: Sequence[Sample], config: Any, rng: np.random.Generator,
            choice: Mapping[str, Any] | None = None) -> tuple[Sample, Any]:
        """Sample the parameters, then apply them: ``(output sample, params)``.

        Example:
            >>> from datatools.augment import OPS
            >>> out, params = OPS["flip"].run([sample], OPS["flip"].config_type(), np.random.default_rng(0),
            ...                              {"direction": "h"})
        """
        params = self.sample_params(rng, samples, config, choice or {})
        return self.apply(samples, params), params

"""Any albumentations pipeline saved with ``A.save`` (YAML or JSON), applied offline with the masks alongside.

Every object's mask is passed as one plane of ``masks``, so albumentations warps it with the image (with the
pipeline's mask interpolation, nearest neighbour by default) and overlapping objects keep their overlaps. The
pipeline's randomness is seeded per output from ``rng`` (``Compose.set_random_seed``), so outputs do not depend
on the worker that made them. albumentations is imported only when a pipeline is loaded or applied.

Flips rename lateral classes (:mod:`datatools.core.lateral`): the flips albumentations reports it applied to an
output (``save_applied_params``) decide which pairs swap.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from datatools.augment.sampling import SourceIndex, plan_each_source
from datatools.augment.types import OutputPlan, Sample, relabel_objects
from datatools.core.errors import DatatoolsError, UnreadableFileError
from datatools.core.lateral import LateralPairs, applied_mirrors

__all__ = ["AlbuConfig", "AlbuParams", "apply_albu", "load_pipeline", "pipeline_transforms", "plan_albu",
           "sample_albu_params"]

_COMPOSED: dict[str, Any] = {}  # pipeline sha256 -> built Compose, once per process


def _sha256(pipeline: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(pipeline, sort_keys=True).encode("utf-8")).hexdigest()


def load_pipeline(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a pipeline written by ``A.save`` (``.yaml``/``.yml`` or ``.json``), check that it keeps images
    (H, W, 3) uint8 and return its ``A.to_dict`` form.

    Raises:
        UnreadableFileError: the file is missing or not an albumentations pipeline.
        DatatoolsError: the pipeline changes the image type (e.g. ``Normalize``, ``ToTensorV2``).

    Example:
        >>> import albumentations as A
        >>> A.save(A.Compose([A.HorizontalFlip(p=0.5), A.Rotate(limit=15)]), "pipeline.yaml", data_format="yaml")
        >>> pipeline = load_pipeline("pipeline.yaml")
    """
    import albumentations as A

    path = Path(path)
    fmt = "yaml" if path.suffix.lower() in (".yaml", ".yml") else "json"
    try:
        transform = A.load(str(path), data_format=fmt)  # type: ignore[arg-type]
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: pipeline file not found") from None
    except Exception as exc:  # yaml, json and albumentations raise many types for a file that is not a pipeline
        raise UnreadableFileError(f"{path}: not an albumentations pipeline saved with A.save ({exc})") from None
    if not isinstance(transform, A.Compose):
        transform = A.Compose([transform])
    probe = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    masks = np.zeros((1, 64, 64), dtype=np.uint8)
    masks[0, 16:48, 16:48] = 1
    try:
        out = transform(image=probe, masks=masks)
    except Exception as exc:
        raise DatatoolsError(f"{path}: the pipeline fails on an image with masks ({exc})") from None
    image = out["image"]
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise DatatoolsError(f"{path}: the pipeline must keep (H, W, 3) uint8 images to be written offline; "
                             "remove Normalize / ToTensorV2 and similar")
    return dict(A.to_dict(transform))


def pipeline_transforms(pipeline: Mapping[str, Any]) -> list[str]:
    """The names of every transform in a pipeline in its ``A.to_dict`` form, nested ones included.

    Example:
        >>> pipeline_transforms(A.to_dict(A.Compose([A.OneOf([A.HorizontalFlip()]), A.Blur()])))
        ['Compose', 'OneOf', 'HorizontalFlip', 'Blur']
    """
    names: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, Mapping):
            if "__class_fullname__" in node:
                names.append(str(node["__class_fullname__"]).rsplit(".", 1)[-1])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(pipeline)
    return names


@dataclass(frozen=True)
class AlbuConfig:
    """Options of ``datatools augment albu``.

    Attributes:
        pipeline: the pipeline as ``A.to_dict`` gives it (read one with :func:`load_pipeline`).
        copies: outputs per source image.
        min_area: objects with fewer pixels after the pipeline are dropped.
        lateral: the class pairs the pipeline's flips swap (``run_augment`` resolves ``--lateral-pairs`` into it).
    """

    pipeline: Mapping[str, Any] = field(default_factory=dict)
    copies: int = 1
    min_area: int = 1
    lateral: LateralPairs = field(default_factory=LateralPairs)

    def __post_init__(self) -> None:
        if not self.pipeline:
            raise ValueError("give a pipeline: AlbuConfig.from_file('pipeline.yaml')")
        if self.copies < 1 or self.min_area < 1:
            raise ValueError(f"copies and min_area must be >= 1, got {self.copies} and {self.min_area}")

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], **kwargs: Any) -> AlbuConfig:
        """Read the pipeline file (see :func:`load_pipeline`)."""
        return cls(load_pipeline(path), **kwargs)


@dataclass(frozen=True)
class AlbuParams:
    """The pipeline's seed for one output; the pipeline itself is identified by its sha256."""

    seed: int
    pipeline_sha256: str
    min_area: int = 1
    pipeline: Mapping[str, Any] = field(default_factory=dict, repr=False, metadata={"json": False})
    lateral: LateralPairs = field(default_factory=LateralPairs)


def plan_albu(index: SourceIndex, config: AlbuConfig, count: int | None,
              rng: np.random.Generator) -> list[OutputPlan]:
    """``copies`` outputs per source image (or ``count`` of them)."""
    return plan_each_source(index, [{"copy": c} for c in range(config.copies)], count, rng)


def sample_albu_params(rng: np.random.Generator, samples: Sequence[Sample], config: AlbuConfig,
                       choice: Mapping[str, Any]) -> AlbuParams:
    """A seed for the pipeline's own generators."""
    return AlbuParams(int(rng.integers(0, 2**32 - 1)), _sha256(config.pipeline), config.min_area, config.pipeline,
                      config.lateral)


def _compose(params: AlbuParams) -> Any:
    transform = _COMPOSED.get(params.pipeline_sha256)
    if transform is None:
        import albumentations as A

        transform = A.from_dict(dict(params.pipeline))
        transform.save_applied_params = True  # which flips were applied decides which lateral pairs swap
        _COMPOSED[params.pipeline_sha256] = transform
    return transform


def apply_albu(samples: Sequence[Sample], params: AlbuParams) -> Sample:
    """Run the pipeline with its seed on the image and every object's mask; drop objects under ``min_area``;
    lateral pairs swap when the flips applied mirrored the image.

    Example:
        >>> config = AlbuConfig.from_file("pipeline.yaml")
        >>> out = apply_albu([sample], sample_albu_params(np.random.default_rng(0), [sample], config, {}))
    """
    (s,) = samples
    transform = _compose(params)
    transform.set_random_seed(params.seed)
    if len(s.objects):
        out = transform(image=s.image, masks=s.masks.view(np.uint8))
        masks = np.asarray(out["masks"]).astype(bool)
    else:
        out = transform(image=s.image)
        masks = np.zeros((0, *out["image"].shape[:2]), dtype=bool)
    image = np.ascontiguousarray(out["image"])
    keep = masks.sum(axis=(1, 2)) >= max(1, params.min_area)
    objects = relabel_objects(s.objects, params.lateral.mirror_map(*applied_mirrors(out["applied_transforms"])))
    return Sample(image, np.ascontiguousarray(masks), objects, s.image_id).keep(keep)

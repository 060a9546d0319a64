"""Offline augmentation that writes new datasets: mosaic, RICAP, copy-paste, flips/rotations, albumentations.

Adding an op means three things: a module ``augment/<op>.py`` with a config dataclass, a planner, a parameter
sampler and a pure kernel; one line in :data:`OPS`; and a row in the contract test.

Example:
    >>> from datatools.augment import OPS, run_augment, MosaicConfig
    >>> run_augment(ds, "aug/", "mosaic", MosaicConfig(grid_hw=(3, 3)), count=100, seed=0)
"""

from __future__ import annotations

from datatools.augment._records import Segmentation
from datatools.augment._tiles import cut_tiles, tile_windows
from datatools.augment.albu import AlbuConfig, apply_albu, load_pipeline, plan_albu, sample_albu_params
from datatools.augment.copy_paste import (
    Blend,
    CopyPasteConfig,
    apply_copy_paste,
    plan_copy_paste,
    sample_copy_paste_params,
)
from datatools.augment.geometric import (
    FlipConfig,
    FlipDirection,
    RotateConfig,
    apply_flip,
    apply_rotate,
    flip_move,
    plan_flip,
    plan_rotate,
    sample_flip_params,
    sample_rotate_params,
)
from datatools.augment.mosaic import MosaicConfig, apply_mosaic, plan_mosaic, sample_mosaic_params
from datatools.augment.ricap import RicapConfig, apply_ricap, plan_ricap, sample_ricap_params
from datatools.augment.runner import AugmentResult, ImageFormat, run_augment
from datatools.augment.sampling import select_sources
from datatools.augment.types import AugmentOp, ObjectRecord, OutputPlan, Sample

OPS: dict[str, AugmentOp] = {
    "mosaic": AugmentOp("mosaic", MosaicConfig, plan_mosaic, sample_mosaic_params, apply_mosaic,
                        "a grid of tiles from different images cut around a random centre", tile_windows,
                        cut=cut_tiles),
    "ricap": AugmentOp("ricap", RicapConfig, plan_ricap, sample_ricap_params, apply_ricap,
                       "four crops of four images split at a Beta(b, b) point", tile_windows, cut=cut_tiles),
    "copy-paste": AugmentOp("copy-paste", CopyPasteConfig, plan_copy_paste, sample_copy_paste_params,
                            apply_copy_paste, "objects of chosen (rare) classes pasted onto other images",
                            donors=True),
    "flip": AugmentOp("flip", FlipConfig, plan_flip, sample_flip_params, apply_flip,
                      "horizontal / vertical flips", move=flip_move),
    "rotate": AugmentOp("rotate", RotateConfig, plan_rotate, sample_rotate_params, apply_rotate,
                        "90-degree rotations and rotations by any angle"),
    "albu": AugmentOp("albu", AlbuConfig, plan_albu, sample_albu_params, apply_albu,
                      "an albumentations pipeline saved with A.save", needs_rgb=True),
}

__all__ = [
    "OPS",
    "AlbuConfig",
    "AugmentOp",
    "AugmentResult",
    "Blend",
    "CopyPasteConfig",
    "FlipConfig",
    "FlipDirection",
    "ImageFormat",
    "MosaicConfig",
    "ObjectRecord",
    "OutputPlan",
    "RicapConfig",
    "RotateConfig",
    "Sample",
    "Segmentation",
    "load_pipeline",
    "run_augment",
    "select_sources",
]

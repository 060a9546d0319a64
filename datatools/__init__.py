"""datatools: a data-centric toolkit for semantic-segmentation datasets.

Everything the ``datatools`` command does is a function here, for notebooks::

    import datatools as dt
    ds = dt.Dataset.load("train.json", "images/")
    mask = dt.rasterize_semantic(ds.annotations_of(ds.images[0]["id"]), 640, 640, ds.class_map())
"""

from __future__ import annotations

from datatools.core.classes import ClassMap
from datatools.core.dataset import Dataset
from datatools.core.engine import use_engine
from datatools.core.errors import DatatoolsError, InvalidDatasetError, OutputExistsError, UnreadableFileError
from datatools.core.issues import Issue, Severity
from datatools.core.masks import (
    Overlap,
    OverlapPolicy,
    annotation_to_rle,
    mask_to_rle,
    rasterize_multilabel,
    rasterize_semantic,
    rle_to_mask,
)
from datatools.core.parallel import parallel_map
from datatools.formats.mask_dir import coco_to_mask_dir, mask_dir_to_coco
from datatools.formats.polygon_json import coco_to_polygon_json, polygon_json_to_coco
from datatools.formats.submission_dir import mask_dir_to_submission, submission_to_mask_dir
from datatools.validation import ValidationResult, validate_dataset

__version__ = "0.1.0"

__all__ = [
    "ClassMap",
    "Dataset",
    "DatatoolsError",
    "InvalidDatasetError",
    "Issue",
    "Overlap",
    "OverlapPolicy",
    "OutputExistsError",
    "Severity",
    "UnreadableFileError",
    "ValidationResult",
    "__version__",
    "annotation_to_rle",
    "coco_to_mask_dir",
    "coco_to_polygon_json",
    "mask_dir_to_coco",
    "mask_dir_to_submission",
    "mask_to_rle",
    "parallel_map",
    "polygon_json_to_coco",
    "rasterize_multilabel",
    "rasterize_semantic",
    "rle_to_mask",
    "submission_to_mask_dir",
    "use_engine",
    "validate_dataset",
]

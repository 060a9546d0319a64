"""A COCO dataset: records plus the image root they point into. No pixels are held."""

from __future__ import annotations

import copy
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from datatools.core.atomic import output_dir
from datatools.core.classes import ClassMap
from datatools.core.coco import read_coco_json, write_coco_json
from datatools.core.errors import DatatoolsError, InvalidDatasetError
from datatools.core.issues import Issue, Severity
from datatools.core.paths import require_folder, resolve_under
from datatools.core.validate import validate_records
from datatools.core.validate_files import validate_files

__all__ = ["ANNOTATIONS_FILE", "IMAGES_DIR", "Dataset", "resolve_input"]

ANNOTATIONS_FILE = "annotations.json"
IMAGES_DIR = "images"


def resolve_input(
    ann: str | os.PathLike[str] | None,
    images: str | os.PathLike[str] | None,
    data: str | os.PathLike[str] | None,
) -> tuple[Path, Path]:
    """``(annotation file, image root)`` from either ``ann`` and ``images``, or a datatools folder ``data``.

    Raises:
        DatatoolsError: both or neither forms are given, or ``data`` is not a datatools folder.
    """
    if data is not None:
        if ann is not None or images is not None:
            raise DatatoolsError("give either --data or --ann with --images, not both")
        data = require_folder(data, "dataset folder")
        if not (data / ANNOTATIONS_FILE).is_file():
            raise InvalidDatasetError(f"{data}: not a datatools dataset folder (no {ANNOTATIONS_FILE}; for another "
                                      "COCO file give --ann FILE --images DIR)")
        return data / ANNOTATIONS_FILE, data / IMAGES_DIR
    if ann is None or images is None:
        raise DatatoolsError("give --ann and --images (or --data DIR for a folder written by datatools)")
    return Path(ann), Path(images)


@dataclass
class Dataset:
    """A COCO instance file and the folder its ``images[].file_name`` are relative to.

    The whole COCO dict is kept as read, so unknown top-level and per-record fields survive a write.
    Ids are whatever the file says; nothing assumes an id equals a list position.

    Attributes:
        coco: the COCO dict (``images``, ``annotations``, ``categories`` and anything else).
        image_root: folder holding the images.
        source: the annotation file it was read from, used in messages.
        dropped: problems whose records were dropped by ``skip_invalid``.

    Example:
        >>> ds = Dataset.load("examples/medical_waste/train/_annotations.coco.json",
        ...                   "examples/medical_waste/train")
        >>> img = ds.images[0]
        >>> masks_of_first = ds.annotations_of(img["id"])
    """

    coco: dict[str, Any]
    image_root: Path
    source: Path | None = None
    dropped: list[Issue] = field(default_factory=list)

    # ---- reading -------------------------------------------------------------------------------------------
    @classmethod
    def load(
        cls,
        ann: str | os.PathLike[str],
        images: str | os.PathLike[str],
        *,
        check_files: bool = True,
        skip_invalid: bool = False,
        workers: int | None = None,
        progress: bool = False,
    ) -> Dataset:
        """Read and validate a COCO file; refuse it, or drop bad records, when errors are found.

        Args:
            ann: COCO instance json.
            images: image root.
            check_files: also check every image file exists, is readable and has the declared size (headers,
                plus a full decode of JPEG/PNG files whose end marker is missing, i.e. truncated ones).
            skip_invalid: drop records with errors (and the annotations of dropped images and categories)
                instead of refusing; what was dropped is in ``dropped``.
            workers: processes for the file checks.
            progress: show a progress bar for the file checks.

        Raises:
            UnreadableFileError: the json cannot be read.
            InvalidDatasetError: errors were found and ``skip_invalid`` is False; the message gives the first
                one and how many there are.
        """
        ann, images = Path(ann), require_folder(images)
        coco = read_coco_json(ann)
        issues = validate_records(coco, str(ann))
        if check_files:
            issues += validate_files(coco, images, workers=workers, progress=progress)
        errors = [i for i in issues if i.severity is Severity.ERROR]
        ds = cls(coco, images, ann)
        if errors and not skip_invalid:
            more = f" (and {len(errors) - 1} more errors; run `datatools validate`)" if len(errors) > 1 else ""
            first = errors[0]
            raise InvalidDatasetError(f"{first.file}: {first.message}{more}")
        if errors:
            ds = ds.drop_records(errors)
        return ds

    @classmethod
    def from_dir(cls, data: str | os.PathLike[str], **kwargs: Any) -> Dataset:
        """Read a dataset folder written by datatools (``annotations.json`` + ``images/``)."""
        return cls.open(data=data, **kwargs)

    @classmethod
    def open(
        cls,
        ann: str | os.PathLike[str] | None = None,
        images: str | os.PathLike[str] | None = None,
        data: str | os.PathLike[str] | None = None,
        **kwargs: Any,
    ) -> Dataset:
        """The CLI convention: either ``ann`` and ``images``, or ``data`` (see :func:`resolve_input`)."""
        return cls.load(*resolve_input(ann, images, data), **kwargs)

    # ---- access --------------------------------------------------------------------------------------------
    @property
    def images(self) -> list[dict[str, Any]]:
        return self.coco["images"]

    @property
    def annotations(self) -> list[dict[str, Any]]:
        return self.coco["annotations"]

    @property
    def categories(self) -> list[dict[str, Any]]:
        return self.coco["categories"]

    def annotations_of(self, image_id: Any) -> list[dict[str, Any]]:
        """The annotations of one image, in file order."""
        index = self.__dict__.get("_by_image")
        if index is None:
            index = {}
            for ann in self.annotations:
                index.setdefault(ann["image_id"], []).append(ann)
            self.__dict__["_by_image"] = index
        return index.get(image_id, [])

    def image_path(self, image: dict[str, Any]) -> Path:
        """The file of an image record, refusing names that escape the image root."""
        try:
            return resolve_under(self.image_root, image["file_name"])
        except ValueError as exc:
            raise InvalidDatasetError(f"{self.source}: image id {image.get('id')}: {exc}") from None

    def class_map(self) -> ClassMap:
        """Category id -> mask value (1..K in category order)."""
        return ClassMap.from_categories(self.categories)

    # ---- new datasets --------------------------------------------------------------------------------------
    def _with(self, images: list[dict[str, Any]], annotations: list[dict[str, Any]],
              categories: list[dict[str, Any]] | None = None) -> Dataset:
        coco = {**self.coco, "images": images, "annotations": annotations,
                "categories": self.categories if categories is None else categories}
        return Dataset(coco, self.image_root, self.source, list(self.dropped))

    def drop_records(self, errors: list[Issue]) -> Dataset:
        """A copy without the records these issues point at, nor the annotations of dropped images and
        categories; what was dropped is in ``dropped`` (what ``skip_invalid`` does)."""
        bad = {(i.section, i.index) for i in errors if i.index is not None}
        images = [r for k, r in enumerate(self.images) if ("images", k) not in bad]
        cats = [r for k, r in enumerate(self.categories) if ("categories", k) not in bad]
        image_ids, cat_ids = {r["id"] for r in images}, {r["id"] for r in cats}
        anns = [r for k, r in enumerate(self.annotations)
                if ("annotations", k) not in bad and r["image_id"] in image_ids and r["category_id"] in cat_ids]
        out = self._with(images, anns, cats)
        out.dropped = list(errors)
        return out

    def subset(self, image_ids: Iterable[Any]) -> Dataset:
        """The images with these ids (in file order) and their annotations; categories are kept whole."""
        keep = set(image_ids)
        return self._with([r for r in self.images if r["id"] in keep],
                          [r for r in self.annotations if r["image_id"] in keep])

    def reindexed(self) -> Dataset:
        """A copy with image, annotation and category ids renumbered 1..N in file order."""
        coco = copy.deepcopy(self.coco)
        img_ids = {r["id"]: n for n, r in enumerate(coco["images"], start=1)}
        cat_ids = {r["id"]: n for n, r in enumerate(coco["categories"], start=1)}
        for r in coco["images"]:
            r["id"] = img_ids[r["id"]]
        for r in coco["categories"]:
            r["id"] = cat_ids[r["id"]]
        for n, r in enumerate(coco["annotations"], start=1):
            r["id"], r["image_id"], r["category_id"] = n, img_ids[r["image_id"]], cat_ids[r["category_id"]]
        return Dataset(coco, self.image_root, self.source, list(self.dropped))

    # ---- writing -------------------------------------------------------------------------------------------
    def write_json(self, path: str | os.PathLike[str]) -> None:
        """Write the COCO file atomically (every field kept)."""
        write_coco_json(path, self.coco)

    def save(self, out: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
        """Write a dataset folder: ``annotations.json`` and ``images/`` (files copied, same relative names).

        The folder appears complete or not at all. Returns ``out``.
        """
        with output_dir(out, overwrite) as tmp:
            for img in self.images:
                dst = tmp / IMAGES_DIR / img["file_name"]
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(self.image_path(img), dst)
            write_coco_json(tmp / ANNOTATIONS_FILE, self.coco)
        return Path(out)

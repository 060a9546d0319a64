"""Mask folders to competition submission CSVs and back, one image at a time."""

from __future__ import annotations

import os
from collections.abc import Iterator
from enum import Enum
from pathlib import Path, PurePosixPath

import numpy as np
import numpy.typing as npt
from PIL import Image

from datatools.core.atomic import output_dir
from datatools.core.classes import ClassMap
from datatools.core.errors import InvalidDatasetError
from datatools.core.imageio import MaskFormat, encode_mask_png, find_images
from datatools.core.paths import file_name_problem
from datatools.formats.mask_dir import ANN_DIR, CLASSES_FILE, IMG_DIR
from datatools.formats.multilabel_npz import read_multilabel, write_multilabel
from datatools.formats.submission import iter_class_ids_csv, iter_rle_csv, write_class_ids_csv, write_rle_csv

__all__ = ["OLD_STYLE_NAMES", "SubmissionStyle", "mask_dir_to_submission", "submission_to_mask_dir"]


class SubmissionStyle(str, Enum):
    """``class-ids``: ``image_id,PredictionString`` (mask resized to SxS, class ids row-major).
    ``rle``: ``image_name,class,rle`` (one row per image and class, 1-indexed start/length pairs)."""

    CLASS_IDS = "class-ids"
    RLE = "rle"

    @classmethod
    def parse(cls, value: str | SubmissionStyle) -> SubmissionStyle:
        """A style by its name, or by the old competition names ``trash`` (class-ids) and ``xray`` (rle).

        Example:
            >>> SubmissionStyle.parse("trash")
            <SubmissionStyle.CLASS_IDS: 'class-ids'>
        """
        if isinstance(value, SubmissionStyle):
            return value
        name = OLD_STYLE_NAMES.get(value, value)
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown submission style {value!r}; choose class-ids or rle") from None


#: The styles' former names (``train predict --submission trash|xray``), still accepted.
OLD_STYLE_NAMES = {"trash": "class-ids", "xray": "rle"}


def _layout(mask_dir: Path, classes: str | os.PathLike[str] | None) -> tuple[Path, Path | None, ClassMap]:
    ann_dir = mask_dir / ANN_DIR if (mask_dir / ANN_DIR).is_dir() else mask_dir
    img_dir = mask_dir / IMG_DIR if (mask_dir / IMG_DIR).is_dir() else None
    return ann_dir, img_dir, ClassMap.load(classes or mask_dir / CLASSES_FILE)


def _image_name(rel_stem: str, img_dir: Path | None) -> str:
    found = find_images(img_dir, rel_stem) if img_dir is not None else []
    return found[0] if found else rel_stem


def _masks(ann_dir: Path, suffix: str) -> list[Path]:
    files = sorted(ann_dir.rglob(f"*{suffix}"))
    if not files:
        raise InvalidDatasetError(f"{ann_dir}: no {suffix} masks found")
    return files


def mask_dir_to_submission(
    mask_dir: str | os.PathLike[str],
    out_csv: str | os.PathLike[str],
    style: str | SubmissionStyle,
    *,
    size: int = 256,
    classes: str | os.PathLike[str] | None = None,
) -> int:
    """Write the submission CSV of a mask folder (as written by ``datatools convert masks`` or a predictor).

    Args:
        mask_dir: folder with ``ann_dir/`` (and ``img_dir/`` to take image names with extensions from) or an
            ann_dir itself.
        out_csv: the CSV to write (atomically).
        style: ``class-ids`` (needs semantic PNG masks) or ``rle`` (PNG or multilabel ``.npz`` masks).
        size: side of the square the class-id masks are resized to.
        classes: ``classes.json`` [default: MASK_DIR/classes.json].

    Returns:
        The number of images written.

    Example:
        >>> mask_dir_to_submission("pred/", "submission.csv", "class-ids", size=256)
        624
    """
    style = SubmissionStyle.parse(style)
    ann_dir, img_dir, class_map = _layout(Path(mask_dir), classes)
    if style is SubmissionStyle.CLASS_IDS:
        files = _masks(ann_dir, ".png")
        rows = ((_image_name(_rel_stem(p, ann_dir), img_dir), _read_png(p)) for p in files)
        write_class_ids_csv(rows, out_csv, size)
        return len(files)
    multilabel = any(ann_dir.rglob("*.npz"))
    files = _masks(ann_dir, ".npz" if multilabel else ".png")

    def rle_rows() -> Iterator[tuple[str, str, npt.NDArray[np.bool_]]]:
        for p in files:
            name = PurePosixPath(_image_name(_rel_stem(p, ann_dir), img_dir)).name
            if multilabel:
                planes = read_multilabel(p)
                yield from ((name, c.name, planes[c.value - 1]) for c in class_map.classes)
            else:
                mask = _read_png(p)
                yield from ((name, c.name, mask == c.value) for c in class_map.classes)

    write_rle_csv(rle_rows(), out_csv)
    return len(files)


def _rel_stem(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()[: -len(path.suffix)]


def _read_png(path: Path) -> npt.NDArray[np.uint8]:
    with Image.open(path) as im:
        if im.mode not in ("P", "L"):
            raise InvalidDatasetError(f"{path}: mask PNG must be single-channel, got {im.mode}")
        return np.asarray(im, dtype=np.uint8)


def _target(image_name: str, csv: Path, suffix: str) -> str:
    problem = file_name_problem(image_name)
    if problem:
        raise InvalidDatasetError(f"{csv}: {problem}")
    return str(PurePosixPath(image_name).with_suffix(suffix))


def submission_to_mask_dir(
    csv: str | os.PathLike[str],
    out: str | os.PathLike[str],
    style: str | SubmissionStyle,
    classes: ClassMap,
    *,
    size: int = 256,
    shape_hw: tuple[int, int] | None = None,
    mask_format: MaskFormat | str = MaskFormat.PALETTE,
    overwrite: bool = False,
) -> int:
    """Decode a submission CSV into a mask folder (``ann_dir/`` + ``classes.json``), one image at a time.

    ``class-ids`` rows become (size, size) palette PNGs; ``rle`` rows of one image (adjacent, as competition
    files are) become one multilabel ``.npz`` of ``shape_hw``. ``mask_format``: PNGs as ``palette`` or ``gray``
    (:class:`~datatools.core.imageio.MaskFormat`). Returns the number of images written.
    """
    style, csv, mask_format = SubmissionStyle.parse(style), Path(csv), MaskFormat(mask_format)
    with output_dir(out, overwrite) as tmp:
        ann = tmp / ANN_DIR
        ann.mkdir()
        count = 0
        if style is SubmissionStyle.CLASS_IDS:
            palette = classes.palette()
            for image_id, mask in iter_class_ids_csv(csv, size):
                dst = ann / _target(image_id, csv, ".png")
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(encode_mask_png(mask, palette, mask_format))
                count += 1
        else:
            if shape_hw is None:
                raise InvalidDatasetError(f"{csv}: rle submissions need the mask shape (--shape H,W)")
            count = _rle_to_planes(csv, ann, classes, shape_hw)
        classes.save(tmp / CLASSES_FILE)
    return count


def _rle_to_planes(csv: Path, ann: Path, classes: ClassMap, shape_hw: tuple[int, int]) -> int:
    index = {c.name: c.value - 1 for c in classes.classes}
    done: set[str] = set()
    current: str | None = None
    planes = np.zeros((len(classes), *shape_hw), dtype=bool)

    def flush() -> None:
        if current is not None:
            write_multilabel(ann / _target(current, csv, ".npz"), planes)
            done.add(current)

    for image_name, class_name, mask in iter_rle_csv(csv, shape_hw):
        if class_name not in index:
            raise InvalidDatasetError(f"{csv}: class {class_name!r} is not in the classes file")
        if image_name != current:
            if image_name in done:
                raise InvalidDatasetError(f"{csv}: rows of {image_name!r} are not adjacent; sort the file by image")
            flush()
            current = image_name
            planes[:] = False
            (ann / _target(image_name, csv, ".npz")).parent.mkdir(parents=True, exist_ok=True)
        planes[index[class_name]] = mask
    flush()
    return len(done)

"""Competition submission CSVs: class-id strings (recycling trash) and per-class RLE (hand-bone X-ray).

Both styles are pure numpy + ``csv``. Writes build the whole text first and then replace the file atomically,
so the same rows always give the same bytes (``\\n`` line endings).
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.atomic import atomic_write_text
from datatools.core.errors import InvalidDatasetError, UnreadableFileError

__all__ = [
    "CLASS_IDS_HEADER",
    "RLE_HEADER",
    "class_ids_to_mask",
    "iter_class_ids_csv",
    "iter_rle_csv",
    "mask_to_class_ids",
    "mask_to_submission_rle",
    "read_class_ids_csv",
    "read_rle_csv",
    "submission_rle_to_mask",
    "write_class_ids_csv",
    "write_rle_csv",
]

CLASS_IDS_HEADER = ("image_id", "PredictionString")
RLE_HEADER = ("image_name", "class", "rle")

_UINTS = re.compile(r"\s*\d+(?:\s+\d+)*\s*", re.ASCII)
_INTS = re.compile(r"\s*[+-]?\d+(?:\s+[+-]?\d+)*\s*", re.ASCII)
# csv's default field limit (128 KiB) is smaller than one 256x256 class-id string or a 2048x2048 RLE.
_FIELD_LIMIT = 2**31 - 1


def _check_size(size: int) -> None:
    if isinstance(size, bool) or not isinstance(size, int | np.integer) or size < 1:
        raise ValueError(f"size must be a positive int, got {size!r}")


def mask_to_class_ids(mask: npt.NDArray[np.integer], size: int = 256) -> str:
    """Resize a class-id mask to ``size`` x ``size`` (nearest neighbour) and spell it row-major.

    Args:
        mask: (H, W) class ids in 0..255 (any integer dtype; cast to uint8).
        size: side of the square the competition expects.

    Returns:
        ``size * size`` space-separated integers.

    Raises:
        InvalidDatasetError: the mask is not 2-D or holds values outside 0..255.

    Example:
        >>> mask_to_class_ids(np.array([[0, 1], [2, 3]], np.uint8), size=2)
        '0 1 2 3'
    """
    _check_size(size)
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.size == 0 or not np.issubdtype(mask.dtype, np.integer):
        raise InvalidDatasetError(f"mask must be non-empty (H, W) integers, got {mask.shape} {mask.dtype}")
    if mask.min() < 0 or mask.max() > 255:
        raise InvalidDatasetError(f"class ids must lie in 0..255, got {mask.min()}..{mask.max()}")
    small = cv2.resize(mask.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
    return " ".join(map(str, small.reshape(-1).tolist()))


def class_ids_to_mask(text: str, size: int = 256) -> npt.NDArray[np.uint8]:
    """Parse a class-id string back into a (size, size) uint8 mask.

    Raises:
        InvalidDatasetError: not all values are integers in 0..255, or there are not ``size * size`` of them.

    Example:
        >>> class_ids_to_mask("0 1 2 3", size=2).tolist()
        [[0, 1], [2, 3]]
    """
    _check_size(size)
    if not _UINTS.fullmatch(text):
        raise InvalidDatasetError("PredictionString holds something other than non-negative integers")
    tokens = text.split()
    if len(tokens) != size * size:
        raise InvalidDatasetError(f"PredictionString has {len(tokens)} values, expected {size}*{size}")
    values = np.fromiter(map(int, tokens), dtype=np.int64, count=len(tokens))
    if values.max() > 255:
        raise InvalidDatasetError(f"PredictionString holds class id {values.max()}, expected 0..255")
    return values.astype(np.uint8).reshape(size, size)


def mask_to_submission_rle(mask: npt.NDArray[np.bool_]) -> str:
    """Run-length encode a binary mask as 1-indexed ``start length`` pairs over its row-major pixels.

    Args:
        mask: (H, W) mask; any non-zero value counts as foreground.

    Returns:
        Space-separated pairs, ``""`` for an empty mask.

    Example:
        >>> mask_to_submission_rle(np.array([[0, 1, 1], [1, 0, 0]], bool))
        '2 3'
    """
    if np.ndim(mask) != 2:
        raise InvalidDatasetError(f"mask must be (H, W), got shape {np.shape(mask)}")
    pixels = np.concatenate([[False], np.asarray(mask).reshape(-1).astype(bool), [False]])
    runs = np.flatnonzero(pixels[1:] != pixels[:-1]) + 1
    runs[1::2] -= runs[::2]
    return " ".join(map(str, runs.tolist()))


def submission_rle_to_mask(text: str, shape_hw: tuple[int, int]) -> npt.NDArray[np.bool_]:
    """Decode 1-indexed ``start length`` pairs into a (H, W) bool mask (overlapping runs are merged).

    Raises:
        InvalidDatasetError: odd count, non-integers, start < 1, length < 1, or a run past the last pixel.

    Example:
        >>> submission_rle_to_mask("2 3", (2, 3)).astype(int).tolist()
        [[0, 1, 1], [1, 0, 0]]
    """
    height, width = (int(v) for v in shape_hw)
    if height < 1 or width < 1:
        raise ValueError(f"shape_hw must be two positive ints, got {shape_hw!r}")
    n = height * width
    if not text.strip():
        return np.zeros((height, width), dtype=bool)
    if not _INTS.fullmatch(text):
        raise InvalidDatasetError("rle holds something other than integers")
    tokens = text.split()
    if len(tokens) % 2:
        raise InvalidDatasetError(f"rle has an odd number of values ({len(tokens)}), expected pairs")
    pairs = np.fromiter(map(int, tokens), dtype=np.int64, count=len(tokens)).reshape(-1, 2)
    starts, lengths = pairs[:, 0], pairs[:, 1]
    if starts.min() < 1:
        raise InvalidDatasetError(f"rle has start {starts.min()}; starts are 1-indexed and must be >= 1")
    if lengths.min() < 1:
        raise InvalidDatasetError(f"rle has run length {lengths.min()}; lengths must be >= 1")
    ends = starts - 1 + lengths
    if ends.max() > n:
        raise InvalidDatasetError(f"rle runs to pixel {ends.max()}, past the {height}x{width}={n} pixels")
    edges = np.zeros(n + 1, dtype=np.int64)
    np.add.at(edges, starts - 1, 1)
    np.add.at(edges, ends, -1)
    return (np.cumsum(edges[:n]) > 0).reshape(height, width)


def _csv_text(header: tuple[str, ...], rows: Iterable[tuple[str, ...]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buf.getvalue()


def _read_rows(path: Path, header: tuple[str, ...]) -> list[tuple[int, list[str]]]:
    """Return ``(line_number, fields)`` of every non-blank CSV row after checking the header and widths."""
    rows: list[tuple[int, list[str]]] = []
    old_limit = csv.field_size_limit(_FIELD_LIMIT)
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = csv.reader(fh)
            first = next(reader, None)
            if first is None or tuple(first) != header:
                got = ",".join(first) if first else "missing"
                raise InvalidDatasetError(f"{path}: header is {got!r}, expected {','.join(header)!r}")
            for fields in reader:
                if fields and len(fields) != len(header):
                    raise InvalidDatasetError(
                        f"{path}: line {reader.line_num} has {len(fields)} fields, expected {len(header)} "
                        f"({','.join(header)})"
                    )
                if fields:
                    rows.append((reader.line_num, fields))
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: submission file not found") from None
    except UnicodeDecodeError:
        raise UnreadableFileError(f"{path}: not UTF-8 text, expected a CSV file") from None
    except csv.Error as exc:
        raise UnreadableFileError(f"{path}: malformed CSV ({exc})") from None
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    finally:
        csv.field_size_limit(old_limit)
    return rows


def write_class_ids_csv(
    rows: Iterable[tuple[str, npt.NDArray[np.integer]]], path: str | os.PathLike[str], size: int = 256
) -> None:
    """Write ``image_id,PredictionString`` rows, one per ``(image_id, mask)``, in the order given.

    Raises:
        InvalidDatasetError: a mask cannot be encoded or an image id repeats (names the image id).

    Example:
        >>> write_class_ids_csv([("batch_01/0001.jpg", mask)], "submission.csv")
        >>> read_class_ids_csv("submission.csv")["batch_01/0001.jpg"].shape
        (256, 256)
    """
    out: list[tuple[str, str]] = []
    seen: set[str] = set()
    for image_id, mask in rows:
        if image_id in seen:
            raise InvalidDatasetError(f"{path}: image_id {image_id!r} given twice")
        seen.add(image_id)
        try:
            out.append((image_id, mask_to_class_ids(mask, size)))
        except InvalidDatasetError as exc:
            raise InvalidDatasetError(f"{path}: image_id {image_id!r}: {exc}") from None
    atomic_write_text(path, _csv_text(CLASS_IDS_HEADER, out))


def read_class_ids_csv(path: str | os.PathLike[str], size: int = 256) -> dict[str, npt.NDArray[np.uint8]]:
    """Read a class-id submission into ``{image_id: (size, size) uint8 mask}``.

    Raises:
        UnreadableFileError: the file is missing or not a readable CSV.
        InvalidDatasetError: wrong header, bad PredictionString or repeated image id (names file and line).

    Example:
        >>> masks = read_class_ids_csv("submission.csv")
        >>> next(iter(masks.values())).dtype
        dtype('uint8')
    """
    return dict(iter_class_ids_csv(path, size))


def iter_class_ids_csv(
    path: str | os.PathLike[str], size: int = 256
) -> Iterator[tuple[str, npt.NDArray[np.uint8]]]:
    """Yield ``(image_id, mask)`` one row at a time, so a large submission is never held decoded."""
    path = Path(path)
    seen: set[str] = set()
    for line, (image_id, text) in _read_rows(path, CLASS_IDS_HEADER):
        if image_id in seen:
            raise InvalidDatasetError(f"{path}: line {line}: image_id {image_id!r} appears twice")
        seen.add(image_id)
        try:
            mask = class_ids_to_mask(text, size)
        except InvalidDatasetError as exc:
            raise InvalidDatasetError(f"{path}: line {line} (image_id {image_id!r}): {exc}") from None
        yield image_id, mask


def write_rle_csv(
    rows: Iterable[tuple[str, str, npt.NDArray[np.bool_]]], path: str | os.PathLike[str]
) -> None:
    """Write ``image_name,class,rle`` rows, one per ``(image_name, class_name, mask)``, in the order given.

    Raises:
        InvalidDatasetError: a mask is not 2-D or an (image_name, class) pair repeats.

    Example:
        >>> write_rle_csv([("image1661130828152_R.png", "finger-1", mask)], "output.csv")
        >>> read_rle_csv("output.csv", (2048, 2048))[("image1661130828152_R.png", "finger-1")].dtype
        dtype('bool')
    """
    out: list[tuple[str, str, str]] = []
    seen: set[tuple[str, str]] = set()
    for image_name, class_name, mask in rows:
        if (image_name, class_name) in seen:
            raise InvalidDatasetError(f"{path}: ({image_name!r}, {class_name!r}) given twice")
        seen.add((image_name, class_name))
        try:
            out.append((image_name, class_name, mask_to_submission_rle(mask)))
        except InvalidDatasetError as exc:
            raise InvalidDatasetError(f"{path}: ({image_name!r}, {class_name!r}): {exc}") from None
    atomic_write_text(path, _csv_text(RLE_HEADER, out))


def read_rle_csv(
    path: str | os.PathLike[str], shape_hw: tuple[int, int]
) -> dict[tuple[str, str], npt.NDArray[np.bool_]]:
    """Read an RLE submission into ``{(image_name, class_name): (H, W) bool mask}``.

    An empty ``rle`` field gives an all-False mask.

    Raises:
        UnreadableFileError: the file is missing or not a readable CSV.
        InvalidDatasetError: wrong header, bad rle or repeated (image_name, class) pair (names file and line).

    Example:
        >>> masks = read_rle_csv("output.csv", (2048, 2048))
        >>> sorted(masks)[0]
        ('image1661130828152_R.png', 'finger-1')
    """
    return {(image, cls): mask for image, cls, mask in iter_rle_csv(path, shape_hw)}


def iter_rle_csv(
    path: str | os.PathLike[str], shape_hw: tuple[int, int]
) -> Iterator[tuple[str, str, npt.NDArray[np.bool_]]]:
    """Yield ``(image_name, class_name, mask)`` one row at a time (rows of one image are adjacent in
    competition files, so a caller can assemble and write one image at a time)."""
    path = Path(path)
    seen: set[tuple[str, str]] = set()
    for line, (image_name, class_name, text) in _read_rows(path, RLE_HEADER):
        key = (image_name, class_name)
        if key in seen:
            raise InvalidDatasetError(f"{path}: line {line}: ({image_name!r}, {class_name!r}) appears twice")
        seen.add(key)
        try:
            mask = submission_rle_to_mask(text, shape_hw)
        except InvalidDatasetError as exc:
            raise InvalidDatasetError(f"{path}: line {line} {key!r}: {exc}") from None
        yield image_name, class_name, mask

"""The one image reader and writer of datatools.

Headers are checked before any pixel is decoded, so a file that declares a huge size (a decompression bomb) is
refused without allocating it. Pixels are read as stored: EXIF orientation is ignored, so what is decoded has the
width and height the header declares, which is what COCO ``width``/``height`` describe.
"""

from __future__ import annotations

import contextlib
import io
import os
import warnings
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt
from PIL import Image

from datatools.core.errors import UnreadableFileError

__all__ = [
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_PIXELS",
    "check_image_file",
    "declared_size",
    "decode_image_strict",
    "MaskFormat",
    "encode_image",
    "encode_mask_png",
    "encode_palette_png",
    "find_images",
    "read_image",
    "read_image_size",
]

#: File suffixes datatools treats as images (matched in any case).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")

#: Largest image (width * height) datatools agrees to decode: 12000 x 12000, under Pillow's own refusal
#: threshold (2 x Image.MAX_IMAGE_PIXELS, about 179 M pixels) so that this limit is the one that applies.
MAX_IMAGE_PIXELS = 12000 * 12000


def read_image_size(path: str | os.PathLike[str], max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """Read ``(width, height)`` from an image header without decoding pixels.

    Raises:
        UnreadableFileError: the file is missing, is not an image, or declares more than ``max_pixels`` pixels.

    Example:
        >>> read_image_size("examples/medical_waste/train/a.jpg")
        (640, 640)
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            size = declared_size(fh.read(_HEADER_PREFIX))
    except OSError:
        size = None  # Pillow opens it again and names the problem
    return _header_size(path, path, max_pixels) if size is None else _checked_size(size, path, max_pixels)


#: bytes read for :func:`declared_size` (a JPEG's frame header follows its APPn segments, at most 64 KiB each;
#: a header further in is left to Pillow)
_HEADER_PREFIX = 1 << 17


def _header_size(source: Path | io.BytesIO, path: Path, max_pixels: int) -> tuple[int, int]:
    """``(width, height)`` from the header of ``source`` (a file, or bytes already read from ``path``)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as im:
                width, height = im.size
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: image file not found") from None
    except Image.DecompressionBombError:
        raise UnreadableFileError(f"{path}: header declares a huge image (possible decompression bomb)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableFileError(f"{path}: not a readable image ({exc})") from None
    return _checked_size((width, height), path, max_pixels)


def _checked_size(size: tuple[int, int], path: Path, max_pixels: int) -> tuple[int, int]:
    width, height = size
    if width * height > max_pixels:
        raise UnreadableFileError(
            f"{path}: header declares {width}x{height} pixels, over the limit of {max_pixels} "
            "(possible decompression bomb); refused before decoding"
        )
    return width, height


_JPEG_SOI, _JPEG_EOI = b"\xff\xd8\xff", b"\xff\xd9"
_PNG_SIGNATURE, _PNG_IEND = b"\x89PNG\r\n\x1a\n", b"IEND\xaeB`\x82"
#: JPEG start-of-frame markers (baseline, extended, progressive, lossless; Huffman or arithmetic): they carry the
#: frame's height and width. C4 (DHT), C8 (JPG) and CC (DAC) share the range but are not frames.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
#: markers without a length field: TEM and the restart markers RST0-7
_JPEG_STANDALONE = frozenset({0x01, *range(0xD0, 0xD8)})


def declared_size(data: npt.NDArray[np.uint8] | bytes) -> tuple[int, int] | None:
    """``(width, height)`` as a JPEG's first frame header or a PNG's IHDR declares them, read from the file's bytes
    in about 1 us (Pillow takes about 20 us to open a JPEG header); ``None`` for any other format and for
    any header that is not plainly well-formed (the caller falls back to Pillow, which names the problem).

    These are the sizes the decoders allocate for (libjpeg reads the first frame header; libpng the IHDR), so they
    are what a decompression-bomb check must look at.
    """
    buf = memoryview(data if isinstance(data, bytes) else data.data).cast("B")
    n = len(buf)
    if n >= 24 and buf[:8] == _PNG_SIGNATURE and buf[12:16] == b"IHDR":
        width, height = int.from_bytes(buf[16:20], "big"), int.from_bytes(buf[20:24], "big")
        return (width, height) if width and height else None
    if n < 4 or buf[:3] != _JPEG_SOI:
        return None
    pos = 2
    while pos + 4 <= n:
        if buf[pos] != 0xFF:
            return None
        marker = buf[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        if marker in _JPEG_STANDALONE:
            pos += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # a second SOI, EOI or start of scan before any frame header
            return None
        length = (buf[pos + 2] << 8) | buf[pos + 3]
        if marker in _JPEG_SOF:
            if length < 8 or pos + 9 > n:
                return None
            height, width = (buf[pos + 5] << 8) | buf[pos + 6], (buf[pos + 7] << 8) | buf[pos + 8]
            return (width, height) if width and height else None  # height 0: set later by a DNL marker
        if length < 2:
            return None
        pos += 2 + length
    return None


def read_image(
    path: str | os.PathLike[str], mode: str = "rgb", max_pixels: int = MAX_IMAGE_PIXELS
) -> npt.NDArray[np.uint8]:
    """Decode an image after checking its header.

    Args:
        path: image file.
        mode: ``"rgb"`` for (H, W, 3) RGB, ``"bgr"`` for (H, W, 3) in OpenCV's order (for work that does not
            look at colour and writes with :func:`encode_image` ``order="bgr"``: no conversion either way),
            ``"gray"`` for (H, W), ``"unchanged"`` for what the file holds.
        max_pixels: refuse images whose header declares more pixels than this.

    Returns:
        The pixels as uint8 (16-bit files are returned as stored with ``mode="unchanged"``).

    Raises:
        UnreadableFileError: missing, undecodable, or too large.
    """
    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)  # read once: the header is checked in memory
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: image file not found") from None
    except (IsADirectoryError, PermissionError) as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror})") from None
    size = declared_size(data)
    if size is None:  # not a plain JPEG or PNG header: Pillow reads it (and names what is wrong)
        _header_size(io.BytesIO(data.tobytes()), path, max_pixels)
    else:
        _checked_size(size, path, max_pixels)
    # OpenCV >= 4.10 decodes straight to RGB, saving a full-image colour conversion
    rgb_flag = getattr(cv2, "IMREAD_COLOR_RGB", None)
    flags = {
        "rgb": (rgb_flag if rgb_flag is not None else cv2.IMREAD_COLOR) | cv2.IMREAD_IGNORE_ORIENTATION,
        "bgr": cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION,
        "gray": cv2.IMREAD_GRAYSCALE | cv2.IMREAD_IGNORE_ORIENTATION,
        "unchanged": cv2.IMREAD_UNCHANGED,
    }[mode]
    image = cv2.imdecode(data, flags)
    if image is None:
        raise UnreadableFileError(f"{path}: image could not be decoded")
    if mode == "rgb" and rgb_flag is None:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    return cast("npt.NDArray[np.uint8]", image)


@contextlib.contextmanager
def _quiet_opencv() -> Iterator[None]:
    previous = cv2.utils.logging.getLogLevel()
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)
    try:
        yield
    finally:
        cv2.utils.logging.setLogLevel(previous)


def decode_image_strict(path: str | os.PathLike[str], max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """Fully decode an image and fail on any damage (truncation included); return ``(width, height)``.

    Both decoders must accept the file: Pillow, which refuses truncated JPEGs that OpenCV may fill with grey,
    and OpenCV, which :func:`read_image` uses and which refuses a PNG cut short that Pillow still loads.
    Slower than :func:`read_image`; ``datatools validate`` uses it to find broken files.
    """
    width, height = read_image_size(path, max_pixels)
    try:
        with Image.open(path) as im:
            im.load()
    except (OSError, SyntaxError, ValueError) as exc:
        raise UnreadableFileError(f"{path}: image is damaged or truncated ({exc})") from None
    with _quiet_opencv():  # the reason is ours to report, in one line; OpenCV would also log it on stderr
        decoded = cv2.imdecode(np.fromfile(str(path), dtype=np.uint8), cv2.IMREAD_UNCHANGED)
    if decoded is None:
        raise UnreadableFileError(f"{path}: image is damaged or truncated (OpenCV cannot decode it)")
    return width, height


def _end_marker_present(path: Path) -> bool:
    """Whether a JPEG ends with its EOI marker and a PNG with its IEND chunk (other formats: True)."""
    with open(path, "rb") as fh:
        head = fh.read(8)
        fh.seek(0, os.SEEK_END)
        fh.seek(max(0, fh.tell() - 64))
        tail = fh.read()
    if head.startswith(_JPEG_SOI):
        return tail.rstrip(b"\x00").endswith(_JPEG_EOI)
    if head.startswith(_PNG_SIGNATURE):
        return tail.endswith(_PNG_IEND)
    return True


def check_image_file(path: str | os.PathLike[str], max_pixels: int = MAX_IMAGE_PIXELS) -> tuple[int, int]:
    """Header check plus a cheap completeness check; return ``(width, height)``.

    A JPEG or PNG whose end marker is missing (a truncated download, a half-copied file) is decoded fully, so
    it is refused when it is really cut short and accepted when it only carries harmless trailing bytes. Other
    files are only read up to their header; damage inside the pixel data needs :func:`decode_image_strict`.

    Raises:
        UnreadableFileError: missing, not an image, truncated, or larger than ``max_pixels``.

    Example:
        >>> check_image_file("examples/medical_waste/train/a.jpg")
        (640, 640)
    """
    size = read_image_size(path, max_pixels)
    try:
        complete = _end_marker_present(Path(path))
    except OSError as exc:
        raise UnreadableFileError(f"{path}: cannot be read ({exc.strerror})") from None
    return size if complete else decode_image_strict(path, max_pixels)


def encode_image(image: npt.NDArray[np.uint8], ext: str, quality: int = 95, order: str = "rgb") -> bytes:
    """Encode (H, W, 3) pixels in ``order`` ("rgb" or "bgr") or gray (H, W) pixels as ``ext`` (".jpg", ".png",
    ...) bytes."""
    ext = ext.lower() if ext.startswith(".") else "." + ext.lower()
    if order not in ("rgb", "bgr"):
        raise ValueError(f"order must be 'rgb' or 'bgr', got {order!r}")
    pixels = cv2.cvtColor(image, cv2.COLOR_RGB2BGR) if image.ndim == 3 and order == "rgb" else image
    params: list[int] = []
    if ext in (".jpg", ".jpeg"):
        params = [cv2.IMWRITE_JPEG_QUALITY, int(quality)]
    ok, buf = cv2.imencode(ext, pixels, params)
    if not ok:
        raise UnreadableFileError(f"cannot encode an image as {ext}")
    return buf.tobytes()


def encode_palette_png(mask: npt.NDArray[np.uint8], palette: npt.NDArray[np.uint8]) -> bytes:
    """Encode a (H, W) uint8 label mask as a single-channel palette PNG (mmsegmentation style).

    Args:
        mask: class values per pixel.
        palette: (256, 3) uint8 colours, one per value; viewers show colours, readers get the values.
    """
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"mask must be (H, W) uint8, got shape {mask.shape} and dtype {mask.dtype}")
    im = Image.fromarray(mask, mode="P")
    im.putpalette(palette.astype(np.uint8).reshape(-1).tolist())
    buf = io.BytesIO()
    im.save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


class MaskFormat(str, Enum):
    """How a label mask PNG stores its class values.

    Both store the class value of each pixel in a single 8-bit channel; they differ in what a reader gets:

    - ``palette`` (mode P, the mmsegmentation convention): viewers show the class colours of ``classes.json``;
      ``PIL.Image.open`` and mmseg read the class values, but OpenCV expands the palette: ``cv2.imread`` gives BGR
      colours, even with ``cv2.IMREAD_UNCHANGED`` (and ``IMREAD_GRAYSCALE`` gives the colours' luminance).
    - ``gray`` (mode L): ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` and PIL both read the class values; viewers show
      a nearly black image (values 0..K).
    """

    PALETTE = "palette"
    GRAY = "gray"


def encode_mask_png(mask: npt.NDArray[np.uint8], palette: npt.NDArray[np.uint8],
                    mask_format: MaskFormat | str = MaskFormat.PALETTE) -> bytes:
    """Encode a (H, W) uint8 label mask as a palette PNG (:func:`encode_palette_png`) or a gray one.

    Example:
        >>> png = encode_mask_png(mask, class_map.palette(), "gray")
        >>> (cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED) == mask).all()
        True
    """
    if MaskFormat(mask_format) is MaskFormat.PALETTE:
        return encode_palette_png(mask, palette)
    if mask.ndim != 2 or mask.dtype != np.uint8:
        raise ValueError(f"mask must be (H, W) uint8, got shape {mask.shape} and dtype {mask.dtype}")
    buf = io.BytesIO()
    Image.fromarray(mask, mode="L").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def find_images(root: str | os.PathLike[str], rel_stem: str) -> list[str]:
    """The image files ``<rel_stem>.<ext>`` under ``root`` (any image extension, lower or upper case).

    The stem is joined as text, not with ``with_suffix``: Roboflow stems hold dots (``x_jpg.rf.<hash>``).

    Example:
        >>> find_images("data/img_dir", "ID001/image1")
        ['ID001/image1.png']
    """
    candidates = [f"{rel_stem}{e}" for ext in IMAGE_EXTENSIONS for e in (ext, ext.upper())]
    return [name for name in candidates if (Path(root) / name).is_file()]

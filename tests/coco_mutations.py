"""Ways to break the ``make_coco`` fixture dataset, shared by the validation and bad-input tests."""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np

Mutate = Callable[[dict[str, Any], Path], None]


def noise(h: int, w: int) -> np.ndarray:
    return np.random.default_rng(1).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def set_field(section: str, index: int, **values: Any) -> Mutate:
    def mutate(coco: dict[str, Any], images: Path) -> None:
        coco[section][index].update(values)

    return mutate


def delete_field(section: str, index: int, key: str) -> Mutate:
    def mutate(coco: dict[str, Any], images: Path) -> None:
        del coco[section][index][key]

    return mutate


def missing_file(coco: dict[str, Any], images: Path) -> None:
    (images / "a.png").unlink()


def wrong_size_file(coco: dict[str, Any], images: Path) -> None:
    assert cv2.imwrite(str(images / "a.png"), noise(24, 40))


def jpeg_bytes(h: int = 24, w: int = 32) -> bytes:
    ok, buf = cv2.imencode(".jpg", noise(h, w))
    assert ok
    return buf.tobytes()


def png_bomb_bytes(width: int = 60000, height: int = 60000) -> bytes:
    """A real 1x1 PNG whose IHDR is patched to declare ``width`` x ``height`` (CRC fixed): no pixels behind it."""
    ok, buf = cv2.imencode(".png", np.zeros((1, 1, 3), np.uint8))
    assert ok
    data = bytearray(buf.tobytes())
    assert data[12:16] == b"IHDR"
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)

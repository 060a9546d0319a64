"""Multilabel masks on disk: (K, H, W) bool, bit-packed in a byte-reproducible ``.npz``."""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import numpy as np
import numpy.typing as npt

from datatools.core.errors import UnreadableFileError

__all__ = ["read_multilabel", "write_multilabel"]

_FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # np.savez stamps the current time; a fixed one keeps files identical


def _npy_bytes(array: npt.NDArray[np.generic]) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def write_multilabel(path: str | os.PathLike[str], masks: npt.NDArray[np.bool_]) -> None:
    """Write (K, H, W) bool planes as ``packed`` (bits along W) and ``shape``; readable with ``np.load``."""
    if masks.ndim != 3 or masks.dtype != np.bool_:
        raise ValueError(f"masks must be (K, H, W) bool, got shape {masks.shape} and dtype {masks.dtype}")
    members: dict[str, npt.NDArray[np.generic]] = {
        "packed.npy": np.packbits(masks, axis=-1),
        "shape.npy": np.asarray(masks.shape, dtype=np.int64),
    }
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in members.items():
            info = zipfile.ZipInfo(name, date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, _npy_bytes(array))


def read_multilabel(path: str | os.PathLike[str]) -> npt.NDArray[np.bool_]:
    """Read planes written by :func:`write_multilabel` as (K, H, W) bool."""
    try:
        with np.load(Path(path), allow_pickle=False) as data:
            shape = tuple(int(v) for v in data["shape"])
            return np.unpackbits(data["packed"], axis=-1, count=shape[-1]).astype(bool).reshape(shape)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UnreadableFileError(f"{path}: not a datatools multilabel mask file ({exc})") from None

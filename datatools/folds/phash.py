"""Perceptual hashes for near-duplicate grouping and leakage checks.

The hash is the classic pHash, following the steps of ``imagehash.phash``: grey image resized to 32x32 (here with
OpenCV's area interpolation), 2-D DCT-II (scaled like scipy's unnormalised DCT, so the bits equal imagehash's on
the same 32x32 pixels), the 8x8 lowest frequencies, one bit per coefficient above their median, packed row-major
into a 64-bit integer.
Because flipping or transposing an image only permutes and re-signs its DCT coefficients, the hashes of all eight
flips and 90-degree rotations come from one DCT; comparing one image's hash with all eight of another's makes the
distance blind to flips and rotations, which dataset exports (Roboflow augmentations) apply to copies of a photo.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.errors import UnreadableFileError
from datatools.core.imageio import read_image
from datatools.core.parallel import parallel_map

__all__ = [
    "DEFAULT_MAX_DISTANCE",
    "ImageHashes",
    "dct_variants",
    "file_fingerprint",
    "hash_files",
    "hamming_pairs",
    "phash_bits",
    "phash_variants",
]

#: Largest Hamming distance (of 64 bits) at which two images count as near-duplicates. On the medical-waste
#: export, the Roboflow copies of one photo sit at 0-4 (flips/rotations allowed) and frames of one video scene
#: mostly at 0-8; most pairs of unrelated photos sit above 20.
DEFAULT_MAX_DISTANCE = 8
_HASH_SIDE, _LOW = 32, 8
_BITS = (1 << np.arange(63, -1, -1, dtype=np.uint64)).astype(np.uint64)  # row-major bit weights, first bit high
_BLOCK = 256  # rows per block of the pairwise comparison (bounds memory at _BLOCK x 4096 x 8 words)


def phash_bits(low: npt.NDArray[np.floating]) -> int:
    """Pack an (8, 8) block of DCT coefficients into a 64-bit hash: bit set where above the block median."""
    bits = (low > np.median(low)).reshape(-1)
    return int(np.bitwise_or.reduce(_BITS[bits])) if bits.any() else 0


def dct_variants(low: npt.NDArray[np.floating]) -> list[npt.NDArray[np.floating]]:
    """The (8, 8) low-frequency DCT block of the eight flips/rotations of an image, from the block of the image.

    Flipping left-right negates the odd columns of the DCT, flipping up-down the odd rows, and transposing the
    image transposes the block; these generate all eight flips and 90-degree rotations. Element 0 is the image
    itself.
    """
    odd = (np.arange(low.shape[0]) % 2).astype(bool)
    sign = np.where(odd, -1.0, 1.0)
    out = []
    for block in (low, low.T):
        for flip_ud in (False, True):
            for flip_lr in (False, True):
                b = block * (sign[:, None] if flip_ud else 1.0) * (sign[None, :] if flip_lr else 1.0)
                out.append(b)
    return out


def _low_frequencies(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.float64]:
    small = cv2.resize(gray, (_HASH_SIDE, _HASH_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32)
    coeffs = cv2.dct(small).astype(np.float64)  # orthonormal DCT-II
    # rescale to the unnormalised DCT-II (scipy.fftpack.dct, as imagehash uses), whose 0th row and column weigh
    # sqrt(2) more relative to the rest; the median comparison depends on that ratio
    coeffs[0, :] *= np.sqrt(2.0)
    coeffs[:, 0] *= np.sqrt(2.0)
    return coeffs[:_LOW, :_LOW]


def phash_variants(gray: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """The pHash of a grey image and of its seven other flips/rotations, as (8,) uint64 (element 0: as given).

    Example:
        >>> g = np.tile(np.arange(64, dtype=np.uint8), (64, 1))
        >>> h = phash_variants(g)
        >>> int(h[0]) == int(phash_variants(g[:, ::-1].copy())[1])
        True
    """
    blocks = np.stack(dct_variants(_low_frequencies(gray))).reshape(8, -1)
    # phash_bits of the eight blocks at once (one median call instead of eight: this runs once per image)
    bits = blocks > np.median(blocks, axis=1, keepdims=True)
    return np.where(bits, _BITS, np.uint64(0)).sum(axis=1, dtype=np.uint64)


@dataclass(frozen=True)
class ImageHashes:
    """Fingerprints of a list of image files.

    Attributes:
        sha256: hex digest of each file's bytes (exact duplicates).
        phash: (N, 8) uint64, the pHash of each image's eight flips/rotations (column 0: as stored).
    """

    sha256: tuple[str, ...]
    phash: npt.NDArray[np.uint64]


def file_fingerprint(path: str) -> tuple[str, tuple[int, ...]]:
    """``(sha256 of the bytes, pHash of the 8 flips/rotations)`` of one image file (a parallel_map worker)."""
    try:
        with open(path, "rb") as fh:
            digest = hashlib.sha256(fh.read()).hexdigest()
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: image file not found") from None
    except OSError as exc:
        raise UnreadableFileError(f"{path}: not a readable file ({exc.strerror or exc})") from None
    gray = read_image(path, mode="gray")
    return digest, tuple(int(h) for h in phash_variants(gray))


def hash_files(
    paths: Sequence[str | os.PathLike[str]], *, workers: int | None = None, progress: bool = False
) -> ImageHashes:
    """Fingerprint image files over a process pool (ordered like ``paths``).

    Raises:
        UnreadableFileError: a file is missing or cannot be decoded.

    Example:
        >>> hashes = hash_files(["a.jpg", "b.jpg"], workers=1)
        >>> hashes.phash.shape
        (2, 8)
    """
    results = parallel_map(file_fingerprint, [str(p) for p in paths], workers=workers, desc="hashing images",
                           progress=progress)
    phash = np.array([r[1] for r in results], dtype=np.uint64).reshape(len(results), 8)
    return ImageHashes(tuple(r[0] for r in results), phash)


def hamming_pairs(
    a: npt.NDArray[np.uint64],
    b: npt.NDArray[np.uint64] | None = None,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    *,
    dihedral: bool = True,
) -> list[tuple[int, int, int]]:
    """Pairs of images whose pHash distance is at most ``max_distance``.

    Args:
        a: (N, 8) hash variants (see :func:`phash_variants`).
        b: (M, 8) hash variants to compare against, or ``None`` for all pairs within ``a`` (i < j).
        max_distance: largest Hamming distance counted.
        dihedral: take the smallest distance over the eight flips/rotations (else compare as stored).

    Returns:
        ``(i, j, distance)`` sorted, with ``i`` indexing ``a`` and ``j`` indexing ``b`` (or ``a``).

    Example:
        >>> h = np.zeros((2, 8), dtype=np.uint64)
        >>> hamming_pairs(h)
        [(0, 1, 0)]
    """
    within = b is None
    other = a if b is None else b
    targets = other if dihedral else other[:, :1]
    out: list[tuple[int, int, int]] = []
    col_block = 4096
    for i0 in range(0, len(a), _BLOCK):
        left = a[i0:i0 + _BLOCK, 0]
        j_start = i0 if within else 0
        for j0 in range(j_start, len(other), col_block):
            right = targets[j0:j0 + col_block]
            dist = np.bitwise_count(left[:, None, None] ^ right[None, :, :]).min(axis=2)
            ii, jj = np.nonzero(dist <= max_distance)
            ii, jj = ii + i0, jj + j0
            keep = jj > ii if within else np.ones(len(ii), dtype=bool)
            out.extend(zip(ii[keep].tolist(), jj[keep].tolist(),
                           dist[ii[keep] - i0, jj[keep] - j0].tolist(), strict=True))
    out.sort()
    return out

"""Perceptual hashes: bit-exact against the imagehash algorithm (scipy DCT), flips/rotations, pair search."""

from __future__ import annotations

import hashlib
import itertools
from pathlib import Path

import cv2
import numpy as np
import pytest
import scipy.fftpack

from datatools.core.imageio import read_image
from datatools.folds.phash import file_fingerprint, hamming_pairs, hash_files, phash_bits, phash_variants

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
IMAGES = sorted(EXAMPLE.glob("*.jpg"))


def reference_phash(gray: np.ndarray) -> int:
    """imagehash.phash's steps with scipy's DCT, on the same 32x32 resample as datatools."""
    small = cv2.resize(gray, (32, 32), interpolation=cv2.INTER_AREA).astype(np.float64)
    dct = scipy.fftpack.dct(scipy.fftpack.dct(small, axis=0), axis=1)
    low = dct[:8, :8]
    bits = (low > np.median(low)).reshape(-1)
    return int("".join("1" if b else "0" for b in bits), 2)


def popcount(x: int) -> int:
    return bin(x).count("1")


@pytest.mark.parametrize("path", IMAGES[:6], ids=lambda p: p.name[:20])
def test_phash_equals_the_scipy_reference(path: Path) -> None:
    gray = read_image(path, mode="gray")
    assert int(phash_variants(gray)[0]) == reference_phash(gray)


def test_phash_of_random_arrays_equals_reference() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        h, w = rng.integers(33, 300, size=2)
        gray = rng.integers(0, 256, size=(h, w), dtype=np.uint8)
        assert int(phash_variants(gray)[0]) == reference_phash(gray)


def _transforms(gray: np.ndarray) -> list[np.ndarray]:
    out = []
    for base in (gray, gray.T):
        for ud, lr in itertools.product((False, True), repeat=2):
            g = base[::-1] if ud else base
            out.append(np.ascontiguousarray(g[:, ::-1] if lr else g))
    return out


def test_variants_are_the_hashes_of_flipped_and_rotated_images() -> None:
    gray = read_image(IMAGES[0], mode="gray")  # 640 x 640: INTER_AREA to 32 commutes with flips
    variants = phash_variants(gray)
    for v, transformed in enumerate(_transforms(gray)):
        assert int(variants[v]) == int(phash_variants(transformed)[0]), v
    rotated = np.ascontiguousarray(np.rot90(gray))
    assert int(phash_variants(rotated)[0]) in {int(x) for x in variants}


def test_copies_are_near_and_other_photos_far(tmp_path: Path) -> None:
    gray = read_image(IMAGES[0], mode="gray")
    rgb = read_image(IMAGES[0])
    small = cv2.resize(rgb, (300, 300), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(small[:, ::-1], cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 60])
    assert ok
    copy = tmp_path / "renamed_copy.jpg"
    copy.write_bytes(buf.tobytes())
    hashes = hash_files([IMAGES[0], copy, IMAGES[-1]], workers=1)
    pairs = {(i, j): d for i, j, d in hamming_pairs(hashes.phash, max_distance=64)}
    assert pairs[(0, 1)] <= 4  # resized, flipped, re-encoded: still the same photo
    assert pairs[(0, 2)] > 12
    plain = {(i, j): d for i, j, d in hamming_pairs(hashes.phash, max_distance=64, dihedral=False)}
    assert plain[(0, 1)] > pairs[(0, 1)]  # the flip is what the dihedral comparison undoes
    assert int(phash_variants(gray)[0]) == int(hashes.phash[0, 0])


def test_hamming_pairs_match_a_brute_force_loop() -> None:
    rng = np.random.default_rng(1)
    base = rng.integers(0, 2**63, size=(40, 8), dtype=np.uint64)
    base[5] = base[3] ^ np.uint64(0b1011)  # distance 3 from item 3
    other = rng.integers(0, 2**63, size=(30, 8), dtype=np.uint64)
    other[7, 4] = base[2, 0] ^ np.uint64(1)  # variant 4 of other[7] is 1 bit from base[2]
    for dihedral in (True, False):
        cols = range(8) if dihedral else range(1)
        expect_within = sorted(
            (i, j, min(popcount(int(base[i, 0]) ^ int(base[j, v])) for v in cols))
            for i in range(40) for j in range(i + 1, 40))
        expect_within = [p for p in expect_within if p[2] <= 20]
        assert hamming_pairs(base, max_distance=20, dihedral=dihedral) == expect_within
        expect_cross = sorted(
            (i, j, min(popcount(int(base[i, 0]) ^ int(other[j, v])) for v in cols))
            for i in range(40) for j in range(30))
        expect_cross = [p for p in expect_cross if p[2] <= 20]
        assert hamming_pairs(base, other, max_distance=20, dihedral=dihedral) == expect_cross
    assert (3, 5, 3) in hamming_pairs(base, max_distance=3)
    assert (2, 7, 1) in hamming_pairs(base, other, max_distance=1)
    assert (2, 7, 1) not in hamming_pairs(base, other, max_distance=1, dihedral=False)


def test_file_fingerprint_and_bits() -> None:
    digest, variants = file_fingerprint(str(IMAGES[1]))
    assert digest == hashlib.sha256(IMAGES[1].read_bytes()).hexdigest()
    assert len(variants) == 8
    low = np.arange(64, dtype=float).reshape(8, 8)
    assert phash_bits(low) == (1 << 32) - 1  # the upper half of the values, packed row-major, first bit high

"""RLE flips on run lengths against pycocotools decoding, flipping the pixels and encoding again."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from datatools.core.dataset import Dataset
from datatools.core.masks import annotation_to_rle
from datatools.core.rle_counts import flip_rle, rle_counts

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
FLIPS = [(False, True), (True, False), (True, True), (False, False)]


def _encode(mask: np.ndarray) -> dict:
    return mask_utils.encode(np.asfortranarray(mask.astype(np.uint8)))


def _reference(rle: dict, flip_y: bool, flip_x: bool) -> dict:
    mask = mask_utils.decode(rle)
    return _encode(mask[::-1 if flip_y else 1, ::-1 if flip_x else 1])


def test_counts_read_back_what_pycocotools_wrote() -> None:
    rng = np.random.default_rng(0)
    for _ in range(200):
        h, w = (int(v) for v in rng.integers(1, 40, 2))
        mask = rng.random((h, w)) < rng.random()
        counts = rle_counts(_encode(mask))
        flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)  # zeros first, then alternating
        assert counts.sum() == h * w and np.array_equal(flat, mask.ravel(order="F"))
    long_runs = np.zeros((700, 900), bool)
    long_runs[:, 3:880] = True  # whole columns: counts over 2**15, several 5-bit groups, negative differences
    long_runs[300:310, 500:505] = False
    as_text = {"counts": _encode(long_runs)["counts"].decode("ascii"), "size": [700, 900]}  # as JSON holds it
    counts = rle_counts(as_text)
    flat = np.repeat(np.arange(len(counts)) % 2, counts).astype(bool)
    assert counts.max() > 2**15 and np.array_equal(flat, long_runs.ravel(order="F"))


@pytest.mark.parametrize(("flip_y", "flip_x"), FLIPS)
def test_flips_of_random_masks_are_byte_identical(flip_y: bool, flip_x: bool) -> None:
    rng = np.random.default_rng(1)
    masks = [rng.random((int(h), int(w))) < rng.random() for h, w in rng.integers(1, 25, (300, 2))]
    masks += [np.ones((4, 6), bool), np.zeros((4, 6), bool), np.eye(5, dtype=bool), np.ones((1, 9), bool),
              np.ones((9, 1), bool)]
    tall = np.zeros((50, 7), bool)
    tall[10:, 2:5] = True  # runs that cross column edges and must be split, then merged again
    masks.append(tall)
    for mask in masks:
        rle = _encode(mask)
        assert flip_rle(rle, flip_y, flip_x)["counts"] == _reference(rle, flip_y, flip_x)["counts"], mask.shape


@pytest.mark.parametrize(("flip_y", "flip_x"), FLIPS[:3])
def test_flips_of_every_example_object_are_byte_identical(flip_y: bool, flip_x: bool) -> None:
    ds = Dataset.load(EXAMPLE / "_annotations.coco.json", EXAMPLE)
    n = 0
    for img in ds.images:
        for ann in ds.annotations_of(img["id"]):
            rle = annotation_to_rle(ann["segmentation"], img["height"], img["width"])
            got = flip_rle(rle, flip_y, flip_x)
            assert got["counts"] == _reference(rle, flip_y, flip_x)["counts"] and got["size"] == rle["size"]
            n += 1
    assert n > 100


def test_counts_that_do_not_fill_the_frame_are_refused() -> None:
    with pytest.raises(ValueError, match="not 4x4"):
        flip_rle({"counts": [3, 2], "size": [4, 4]}, True, False)


def test_crops_equal_pycocotools_decoding_cut_to_the_box() -> None:
    from datatools.core.rle_counts import rle_crop

    rng = np.random.default_rng(3)
    for _ in range(300):
        h, w = (int(v) for v in rng.integers(1, 30, 2))
        mask = rng.random((h, w)) < rng.random()
        y0, y1 = sorted(int(v) for v in rng.integers(0, h + 1, 2))
        x0, x1 = sorted(int(v) for v in rng.integers(0, w + 1, 2))
        y1, x1 = max(y1, y0 + 1), max(x1, x0 + 1)
        if y1 > h or x1 > w:
            continue
        crop = rle_crop(_encode(mask), (y0, x0, y1, x1))
        assert crop.dtype == bool and np.array_equal(crop, mask[y0:y1, x0:x1])


def _loop_reference(data: bytes) -> list[int] | None:
    """pycocotools' ``rleFrString`` as a plain loop, None where the string is malformed."""
    runs: list[int] = []
    p = 0
    while p < len(data):
        x = k = 0
        more = True
        while more:
            if p >= len(data) or not 48 <= data[p] < 112:
                return None
            c = data[p] - 48
            x |= (c & 0x1F) << (5 * k)
            more = bool(c & 0x20)
            p += 1
            k += 1
            if not more and c & 0x10:
                x |= -1 << (5 * k)
        if len(runs) > 2:
            x += runs[-2]
        if x < 0:
            return None
        runs.append(x)
    return runs


def test_string_counts_against_a_loop_on_valid_and_broken_strings() -> None:
    from datatools.core.rle_counts import string_counts

    rng = np.random.default_rng(4)
    strings = [_encode(rng.random((int(h), int(w))) < rng.random())["counts"]
               for h, w in rng.integers(1, 60, (200, 2))]
    strings += [bytes(rng.integers(40, 120, int(n)).astype(np.uint8)) for n in rng.integers(1, 12, 300)]  # noise
    strings += [b"0" + bytes([48 + 0x20]), b"\x7f", "é".encode(), b"1" + b"o" * 13 + b"0"]
    valid = 0
    for data in strings:
        expected = _loop_reference(data)
        try:
            got = string_counts(data).tolist()
        except ValueError:
            got = None
        if expected is None:
            assert got is None, data
        elif max(expected, default=0) < 2**55:  # (longer counts are beyond any image and may be refused)
            assert got == expected, data
            valid += 1
    assert valid > 200

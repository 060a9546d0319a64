from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.formats.submission import (
    class_ids_to_mask,
    mask_to_class_ids,
    mask_to_submission_rle,
    read_class_ids_csv,
    read_rle_csv,
    submission_rle_to_mask,
    write_class_ids_csv,
    write_rle_csv,
)


def brute_force_rle(mask: npt.NDArray[np.bool_]) -> str:
    """Reference encoder: walk the row-major pixels one by one."""
    out: list[int] = []
    start, length = 0, 0
    for i, value in enumerate(mask.reshape(-1).tolist(), start=1):
        if value:
            if length == 0:
                start = i
            length += 1
        elif length:
            out += [start, length]
            length = 0
    if length:
        out += [start, length]
    return " ".join(str(v) for v in out)


def _special_masks() -> list[npt.NDArray[np.bool_]]:
    first, last = np.zeros((5, 7), bool), np.zeros((5, 7), bool)
    first[0, 0] = True
    last[-1, -1] = True
    return [np.zeros((4, 6), bool), np.ones((4, 6), bool), first, last, np.ones((1, 1), bool)]


def _random_masks() -> list[npt.NDArray[np.bool_]]:
    rng = np.random.default_rng(0)
    shapes = [(1, 1), (1, 17), (13, 1), (8, 8), (31, 17), (64, 48)]
    return [rng.random(shape) < p for shape in shapes for p in (0.05, 0.5, 0.95)]


@pytest.mark.parametrize("mask", _special_masks() + _random_masks())
def test_rle_matches_brute_force_and_round_trips(mask: npt.NDArray[np.bool_]) -> None:
    text = mask_to_submission_rle(mask)
    assert text == brute_force_rle(mask)
    decoded = submission_rle_to_mask(text, mask.shape)
    assert decoded.dtype == np.bool_
    np.testing.assert_array_equal(decoded, mask)


def test_rle_known_example_by_hand() -> None:
    # 3x4 mask, row-major pixel numbers 1..12:
    #   row 0: 1  2  3  4  -> . X X X   run starts at 2, length 3 (pixels 2, 3, 4)
    #   row 1: 5  6  7  8  -> . . . .
    #   row 2: 9 10 11 12  -> X . X X   runs (9, 1) and (11, 2)
    mask = np.array([[0, 1, 1, 1], [0, 0, 0, 0], [1, 0, 1, 1]], bool)
    assert mask_to_submission_rle(mask) == "2 3 9 1 11 2"
    np.testing.assert_array_equal(submission_rle_to_mask("2 3 9 1 11 2", (3, 4)), mask)


def test_rle_run_wraps_across_rows() -> None:
    mask = np.array([[0, 0, 1], [1, 1, 0]], bool)  # pixels 3, 4, 5 form one run in row-major order
    assert mask_to_submission_rle(mask) == "3 3"


def test_rle_empty_text_gives_all_false() -> None:
    assert not submission_rle_to_mask("", (3, 5)).any()
    assert submission_rle_to_mask("  ", (3, 5)).shape == (3, 5)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("1 2 3", "odd"),
        ("1 a", "integers"),
        ("1 2.5", "integers"),
        ("0 2", "start"),
        ("-1 2", "start"),
        ("1 0", "length"),
        ("3 -1", "length"),
        ("10 4", "past"),
        ("13 1", "past"),
    ],
)
def test_rle_bad_input_raises(text: str, match: str) -> None:
    with pytest.raises(InvalidDatasetError, match=match):
        submission_rle_to_mask(text, (3, 4))


def test_rle_run_reaching_last_pixel_is_fine() -> None:
    assert submission_rle_to_mask("10 3", (3, 4)).reshape(-1)[9:].all()


def test_rle_csv_round_trip_with_underscores_dots_and_dashes(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = [
        ("image1661130828152_R.png", "finger-1", rng.random((20, 30)) < 0.3),
        ("image1661130828152_R.png", "Trapezoid", np.zeros((20, 30), bool)),
        ("ID_001.v2_image_L.png", "finger-1", np.ones((20, 30), bool)),
        ('a,b "quoted".png', "Triquetrum-x-y", rng.random((20, 30)) < 0.7),
    ]
    path = tmp_path / "output.csv"
    write_rle_csv(rows, path)
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("image_name,class,rle\n")
    assert "\r" not in text
    assert "image1661130828152_R.png,Trapezoid,\n" in text
    masks = read_rle_csv(path, (20, 30))
    assert list(masks) == [(name, cls) for name, cls, _ in rows]
    for name, cls, mask in rows:
        np.testing.assert_array_equal(masks[(name, cls)], mask)
    write_rle_csv(rows, tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == path.read_bytes()


def test_rle_csv_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="missing.csv"):
        read_rle_csv(tmp_path / "missing.csv", (2, 2))
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("image_id,PredictionString\na.png,1 2\n")
    with pytest.raises(InvalidDatasetError, match=r"wrong\.csv.*image_name,class,rle"):
        read_rle_csv(wrong, (2, 2))
    bad = tmp_path / "bad.csv"
    bad.write_text("image_name,class,rle\na.png,finger-1,1 9\n")
    with pytest.raises(InvalidDatasetError, match=r"bad\.csv: line 2"):
        read_rle_csv(bad, (2, 2))
    dup = tmp_path / "dup.csv"
    dup.write_text("image_name,class,rle\na.png,c,1 1\na.png,c,2 1\n")
    with pytest.raises(InvalidDatasetError, match="twice"):
        read_rle_csv(dup, (2, 2))


def test_rle_csv_reads_fields_longer_than_csv_default_limit(tmp_path: Path) -> None:
    mask = np.zeros((512, 512), bool)
    mask[:, ::2] = True  # 131072 runs -> a field far over csv's 128 KiB default
    write_rle_csv([("big.png", "c", mask)], tmp_path / "big.csv")
    np.testing.assert_array_equal(read_rle_csv(tmp_path / "big.csv", (512, 512))[("big.png", "c")], mask)


@pytest.mark.parametrize("shape", [(512, 384), (100, 700), (256, 256), (37, 41)])
def test_class_ids_resize_is_nearest_neighbour(shape: tuple[int, int]) -> None:
    rng = np.random.default_rng(2)
    mask = rng.integers(0, 11, size=shape, dtype=np.uint8)
    expected = cv2.resize(mask, (256, 256), interpolation=cv2.INTER_NEAREST)
    text = mask_to_class_ids(mask)
    values = [int(v) for v in text.split(" ")]
    assert len(values) == 256 * 256
    assert values == expected.reshape(-1).tolist()
    assert set(values) <= set(mask.reshape(-1).tolist())


def test_class_ids_round_trip_exact_at_256() -> None:
    mask = np.random.default_rng(3).integers(0, 256, size=(256, 256), dtype=np.uint8)
    decoded = class_ids_to_mask(mask_to_class_ids(mask))
    assert decoded.dtype == np.uint8
    np.testing.assert_array_equal(decoded, mask)


def test_class_ids_small_size() -> None:
    mask = np.array([[0, 1], [2, 3]], np.uint8)
    assert mask_to_class_ids(mask, size=2) == "0 1 2 3"
    assert class_ids_to_mask("0 1 2 3", size=2).tolist() == [[0, 1], [2, 3]]


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("0 1 2", "3 values"),
        ("0 1 2 3 4", "5 values"),
        ("0 1 x 3", "integers"),
        ("0 1 -2 3", "integers"),
        ("0 1 2 256", "256"),
        ("0 1 2 3.0", "integers"),
    ],
)
def test_class_ids_bad_text_raises(text: str, match: str) -> None:
    with pytest.raises(InvalidDatasetError, match=match):
        class_ids_to_mask(text, size=2)


def test_class_ids_bad_mask_raises() -> None:
    with pytest.raises(InvalidDatasetError):
        mask_to_class_ids(np.zeros((2, 2, 3), np.uint8))
    with pytest.raises(InvalidDatasetError):
        mask_to_class_ids(np.full((2, 2), 300, np.int32))


def test_class_ids_csv_round_trip(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    rows = [
        ("batch_01_vt/0021.jpg", rng.integers(0, 11, (256, 256), dtype=np.uint8)),
        ("batch_02_vt/0_1.jpg", rng.integers(0, 11, (256, 256), dtype=np.uint8)),
    ]
    path = tmp_path / "submission.csv"
    write_class_ids_csv(rows, path)
    raw = path.read_bytes()
    assert raw.startswith(b"image_id,PredictionString\n") and b"\r" not in raw
    masks = read_class_ids_csv(path)
    assert list(masks) == [name for name, _ in rows]
    for name, mask in rows:
        np.testing.assert_array_equal(masks[name], mask)
    write_class_ids_csv(rows, tmp_path / "again.csv")
    assert (tmp_path / "again.csv").read_bytes() == raw


def test_class_ids_csv_resizes_big_masks(tmp_path: Path) -> None:
    mask = np.zeros((512, 512), np.uint8)
    mask[256:, :] = 7
    write_class_ids_csv([("a.jpg", mask)], tmp_path / "s.csv")
    out = read_class_ids_csv(tmp_path / "s.csv")["a.jpg"]
    assert out.shape == (256, 256)
    assert (out[128:] == 7).all() and (out[:128] == 0).all()


def test_class_ids_csv_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(UnreadableFileError, match="nope.csv"):
        read_class_ids_csv(tmp_path / "nope.csv")
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("image_name,class,rle\n")
    with pytest.raises(InvalidDatasetError, match=r"wrong\.csv.*image_id,PredictionString"):
        read_class_ids_csv(wrong)
    short = tmp_path / "short.csv"
    short.write_text("image_id,PredictionString\na.jpg,0 1 2\n")
    with pytest.raises(InvalidDatasetError, match=r"short\.csv: line 2.*3 values"):
        read_class_ids_csv(short, size=2)
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    with pytest.raises(InvalidDatasetError, match=r"empty\.csv"):
        read_class_ids_csv(empty)

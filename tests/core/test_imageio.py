from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from datatools.core.imageio import encode_image, find_images, read_image, read_image_size

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"


@pytest.mark.parametrize("path", sorted(EXAMPLE.glob("*.jpg"))[:5], ids=lambda p: p.name[:20])
def test_read_image_equals_opencv_reference(path: Path) -> None:
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION)
    rgb = read_image(path)
    assert rgb.dtype == np.uint8 and rgb.shape == bgr.shape
    assert np.array_equal(rgb, bgr[:, :, ::-1])
    assert np.array_equal(read_image(path, "gray"), cv2.imread(str(path), cv2.IMREAD_GRAYSCALE))
    assert read_image_size(path) == (bgr.shape[1], bgr.shape[0])


def test_png_round_trip_is_lossless(tmp_path: Path) -> None:
    image = np.random.default_rng(0).integers(0, 256, (17, 23, 3), dtype=np.uint8)
    (tmp_path / "x.png").write_bytes(encode_image(image, ".png"))
    assert np.array_equal(read_image(tmp_path / "x.png"), image)


def test_find_images_keeps_dotted_stems_and_any_case(tmp_path: Path) -> None:
    (tmp_path / "p1").mkdir()
    for name in ("x_jpg.rf.ab12.jpg", "p1/scan.PNG", "p1/two.png", "p1/two.jpg", "p1/notes.txt"):
        (tmp_path / name).write_bytes(b"")
    assert find_images(tmp_path, "x_jpg.rf.ab12") == ["x_jpg.rf.ab12.jpg"]
    assert find_images(tmp_path, "p1/scan") == ["p1/scan.PNG"]
    assert sorted(find_images(tmp_path, "p1/two")) == ["p1/two.jpg", "p1/two.png"]
    assert find_images(tmp_path, "p1/notes") == []

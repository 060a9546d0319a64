from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from datatools.core.errors import UnreadableFileError
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


def _jpeg_with_segments(image: np.ndarray, *, progressive: bool = False) -> bytes:
    """A JPEG with an EXIF-like APP1 segment, a comment and fill bytes before its frame header."""
    params = [cv2.IMWRITE_JPEG_PROGRESSIVE, 1] if progressive else []
    ok, buf = cv2.imencode(".jpg", image, params)
    assert ok
    data = buf.tobytes()
    app1 = b"\xff\xe1" + (2 + 300).to_bytes(2, "big") + b"Exif\x00\x00" + bytes(294)
    com = b"\xff\xfe" + (2 + 5).to_bytes(2, "big") + b"hello"
    return data[:2] + app1 + com + b"\xff" + data[2:]  # one fill byte before the next marker


@pytest.mark.parametrize("progressive", [False, True])
def test_declared_size_matches_pillow(tmp_path: Path, progressive: bool) -> None:
    from PIL import Image

    from datatools.core.imageio import declared_size

    image = np.random.default_rng(1).integers(0, 256, (37, 53, 3), dtype=np.uint8)
    files = {"a.jpg": _jpeg_with_segments(image, progressive=progressive), "b.png": encode_image(image, ".png"),
             "c.bmp": encode_image(image, ".bmp")}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
        with Image.open(tmp_path / name) as im:
            expected = im.size
        got = declared_size(np.frombuffer(data, np.uint8))
        assert got == (expected if name != "c.bmp" else None), name  # other formats are left to Pillow
        reference = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)  # JPEG is lossy: OpenCV decides
        assert np.array_equal(read_image(tmp_path / name, "bgr"), reference), name
    for path in sorted(EXAMPLE.glob("*.jpg"))[:20]:
        with Image.open(path) as im:
            assert declared_size(path.read_bytes()) == im.size


def test_declared_size_gives_up_on_malformed_headers() -> None:
    from datatools.core.imageio import declared_size

    data = _jpeg_with_segments(np.zeros((8, 8, 3), np.uint8))
    for cut in range(0, 340, 7):  # every prefix that stops before the frame header: no size, no exception
        assert declared_size(data[:cut]) is None
    assert declared_size(b"\xff\xd8\xff\xda" + bytes(20)) is None  # scan before any frame header
    assert declared_size(b"\xff\xd8\x00\x00" + bytes(20)) is None  # not a marker


def test_read_image_refuses_a_jpeg_bomb_from_its_header(tmp_path: Path) -> None:
    data = bytearray(_jpeg_with_segments(np.zeros((8, 8, 3), np.uint8)))
    sof = next(i for i in range(2, len(data) - 1) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC2))
    data[sof + 5:sof + 9] = (60000).to_bytes(2, "big") + (60000).to_bytes(2, "big")
    path = tmp_path / "bomb.jpg"
    path.write_bytes(bytes(data))
    with pytest.raises(UnreadableFileError, match="60000x60000 pixels, over the limit"):
        read_image(path)
    with pytest.raises(UnreadableFileError, match="over the limit of 63"):
        read_image(tmp_path / "bomb.jpg", max_pixels=63)

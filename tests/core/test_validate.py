"""Every problem ``datatools validate`` knows, one broken fixture each, with its exact code and severity."""

from __future__ import annotations

import json
import math
import re
import resource
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from coco_mutations import (
    Mutate,
    delete_field,
    jpeg_bytes,
    missing_file,
    noise,
    png_bomb_bytes,
    set_field,
    wrong_size_file,
)
from pycocotools import mask as mask_utils

from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.core.imageio import check_image_file, read_image_size
from datatools.core.issues import Issue
from datatools.core.validate import validate_records
from datatools.core.validate_files import validate_files
from datatools.validation import validate_dataset

Expected = list[tuple[str, str, Any]]  # (severity, code, record id)


def _segm(index: int, segmentation: Any) -> Mutate:
    def mutate(coco: dict[str, Any], images: Path) -> None:
        coco["annotations"][index]["segmentation"] = segmentation

    return mutate


def _image_file(name: str, data: Callable[[Path], bytes]) -> Mutate:
    """Point image 10 at ``name`` holding ``data(images_dir)``."""

    def mutate(coco: dict[str, Any], images: Path) -> None:
        (images / name).write_bytes(data(images))
        coco["images"][0]["file_name"] = name

    return mutate


def _drop_annotation(ann_id: int) -> Mutate:
    def mutate(coco: dict[str, Any], images: Path) -> None:
        coco["annotations"] = [a for a in coco["annotations"] if a["id"] != ann_id]

    return mutate


def _category_zero(coco: dict[str, Any], images: Path) -> None:
    coco["categories"][0]["id"] = 0
    coco["annotations"][0]["category_id"] = 0


def _duplicate_category_id(coco: dict[str, Any], images: Path) -> None:
    coco["categories"][1]["id"] = 3
    for ann in coco["annotations"]:
        ann["category_id"] = 3


def _absolute_name(coco: dict[str, Any], images: Path) -> None:
    coco["images"][1]["file_name"] = str((images / "sub" / "b.png").resolve())  # exists, still refused


def _escaping_name(coco: dict[str, Any], images: Path) -> None:
    (images.parent / "outside.png").write_bytes((images / "a.png").read_bytes())  # exists, still refused
    coco["images"][1]["file_name"] = "../outside.png"


def _compressed_rle(mask_hw: tuple[int, int] = (24, 32)) -> dict[str, Any]:
    mask = np.zeros(mask_hw, np.uint8)
    mask[3:9, 4:12] = 1
    rle = mask_utils.encode(np.asfortranarray(mask))
    return {"size": list(mask_hw), "counts": rle["counts"].decode("ascii")}


def _uncompressed_rle(counts: list[int]) -> dict[str, Any]:
    return {"size": [24, 32], "counts": counts}


def _crowd_rle(coco: dict[str, Any], images: Path) -> None:
    coco["annotations"][1].update(iscrowd=1, segmentation=_uncompressed_rle([100, 40, 628]))


E, W, I = "error", "warning", "info"  # noqa: E741

# (case id, mutate, expected issues (severity, code, record id), where the issue comes from)
CASES: list[tuple[str, Mutate | None, Expected, str]] = [
    ("clean", None, [], ""),
    ("clean-compressed-rle", _segm(0, _compressed_rle()), [], ""),
    ("clean-crowd-uncompressed-rle", _crowd_rle, [], ""),
    ("clean-polygon-on-the-border", _segm(0, [[0, 0, 32, 0, 32, 24, 0, 24]]), [], ""),
    # records
    ("missing-key-image", delete_field("images", 1, "width"), [(E, "missing-key", 20)], "records"),
    ("missing-key-annotation", delete_field("annotations", 1, "category_id"), [(E, "missing-key", 101)], "records"),
    ("missing-key-category", delete_field("categories", 0, "name"), [(E, "missing-key", 3)], "records"),
    ("duplicate-image-id", set_field("images", 1, id=10), [(E, "duplicate-image-id", 10), (E, "unknown-image", 102)],
     "records"),
    ("duplicate-annotation-id", set_field("annotations", 2, id=100), [(E, "duplicate-annotation-id", 100)], "records"),
    ("duplicate-category-id", _duplicate_category_id, [(E, "duplicate-category-id", 3)], "records"),
    ("unknown-image", set_field("annotations", 1, image_id=99), [(E, "unknown-image", 101)], "records"),
    ("unknown-category", set_field("annotations", 1, category_id=99), [(E, "unknown-category", 101)], "records"),
    ("empty-list-segmentation", _segm(0, []), [(E, "empty-segmentation", 100)], "records"),
    ("null-segmentation", _segm(0, None), [(E, "no-segmentation", 100)], "records"),
    ("no-segmentation-key", delete_field("annotations", 0, "segmentation"), [(E, "no-segmentation", 100)], "records"),
    ("two-point-polygon", _segm(0, [[2, 2, 10, 2]]), [(E, "too-few-points", 100)], "records"),
    ("nan-coordinates", _segm(0, [[2, math.nan, 10, 2, 10, 10]]), [(E, "nan-coordinates", 100)], "records"),
    ("polygon-fully-outside", _segm(0, [[40, 30, 60, 30, 60, 50]]), [(E, "outside-image", 100)], "records"),
    ("polygon-fully-left", _segm(0, [[-9, 2, -1, 2, -1, 9]]), [(E, "outside-image", 100)], "records"),
    ("polygon-partly-outside", _segm(0, [[20, 10, 40, 10, 40, 30]]), [(W, "partly-outside-image", 100)],
     "records"),
    ("rle-size-mismatch", _segm(0, _compressed_rle((24, 31))), [(E, "rle-size-mismatch", 100)], "records"),
    ("uncompressed-rle-bad-sum", _segm(0, _uncompressed_rle([10, 20, 30])), [(E, "bad-rle", 100)], "records"),
    ("uncompressed-rle-no-foreground", _segm(0, _uncompressed_rle([768])), [(E, "empty-segmentation", 100)],
     "records"),
    ("compressed-rle-garbage", _segm(0, {"size": [24, 32], "counts": "abc"}), [(E, "bad-rle", 100)], "records"),
    ("compressed-rle-too-short", _segm(0, {"size": [24, 32], "counts": "0"}), [(E, "bad-rle", 100)], "records"),
    ("nan-bbox", set_field("annotations", 2, bbox=[4, math.nan, 10, 10]), [(E, "nan-value", 102)], "records"),
    ("duplicate-category-name", set_field("categories", 1, name="cat"),
     [(W, "duplicate-category-name", 3), (W, "duplicate-category-name", 7)], "records"),
    ("category-id-zero", _category_zero, [(W, "category-id-zero", 0)], "records"),
    ("image-without-annotations", _drop_annotation(102), [(I, "no-annotations", 20)], "records"),
    ("absolute-file-name", _absolute_name, [(E, "unsafe-file-name", 20)], "records"),
    ("windows-absolute-file-name", set_field("images", 1, file_name="C:\\data\\b.png"), [(E, "unsafe-file-name", 20)],
     "records"),
    ("dotdot-file-name", _escaping_name, [(E, "unsafe-file-name", 20)], "records"),
    ("inner-dotdot-file-name", set_field("images", 1, file_name="sub/../../b.png"), [(E, "unsafe-file-name", 20)],
     "records"),
    # files
    ("missing-image-file", missing_file, [(E, "missing-image", 10)], "files"),
    ("not-an-image", _image_file("a.jpg", lambda d: b"this is not a jpeg\n" * 20), [(E, "unreadable-image", 10)],
     "files"),
    ("truncated-jpeg", _image_file("a.jpg", lambda d: jpeg_bytes()[: len(jpeg_bytes()) // 2]),
     [(E, "unreadable-image", 10)], "files"),
    ("wrong-size-image", wrong_size_file, [(E, "image-size-mismatch", 10)], "files"),
    ("wrong-declared-size", set_field("images", 0, height=25), [(E, "image-size-mismatch", 10)], "files"),
    ("decompression-bomb", _image_file("a.png", lambda d: png_bomb_bytes()), [(E, "image-too-large", 10)],
     "files"),
]


def _triples(issues: list[Issue]) -> list[tuple[str, str, Any]]:
    return sorted(((i.severity.value, i.code, i.record_id) for i in issues), key=repr)


@contextmanager
def address_space_limit(extra_bytes: int):
    """Cap this process's address space to its current size plus ``extra_bytes`` (Linux only)."""
    try:
        current = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        cap = current + extra_bytes
        if hard != resource.RLIM_INFINITY and cap > hard:
            raise ValueError("hard limit too low")
        resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    except (OSError, ValueError, AttributeError):
        pytest.skip("cannot limit the address space here")
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


@pytest.mark.parametrize(("mutate", "expected", "layer"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_each_problem_is_reported(make_coco, mutate: Mutate | None, expected: Expected, layer: str) -> None:
    ann, images, coco = make_coco(mutate=mutate)
    with address_space_limit(1 << 30):  # the bomb declares 10 GiB of pixels: decoding it would fail here
        result = validate_dataset(ann, images, decode=True, workers=1)
    assert _triples(result.issues) == sorted(expected, key=repr)
    if not expected:
        return

    # the issue comes from the layer that owns the check, reading the json as written (NaN included)
    coco = json.loads(ann.read_text(encoding="utf-8"))
    own = validate_records(coco, str(ann)) if layer == "records" else validate_files(coco, images, workers=1,
                                                                                     decode=True, progress=False)
    assert _triples(own) == sorted(expected, key=repr)
    for issue in result.issues:
        assert re.search(rf"\bid {re.escape(str(issue.record_id))}\b", issue.message), issue.message
        assert "\n" not in issue.message
        if layer == "files":
            assert issue.file == str(images / coco["images"][issue.index]["file_name"])
        else:
            assert issue.file == str(ann)
            assert issue.section in ("images", "annotations", "categories")


def test_records_are_checked_without_the_disk(make_coco) -> None:
    _, _, coco = make_coco(mutate=missing_file)
    assert validate_records(coco, "x.json") == []


@pytest.mark.parametrize(
    ("text", "error", "words"),
    [
        ('{"images": [], "categories": [', UnreadableFileError, "truncated JSON"),
        ("", UnreadableFileError, "truncated JSON"),
        ("\xff\xfe not json", UnreadableFileError, "JSON"),
        ("[]", InvalidDatasetError, "top level is a JSON list"),
        ('{"annotations": []}', InvalidDatasetError, "missing top-level key images, categories"),
        ('{"images": {}, "categories": []}', InvalidDatasetError, "'images' is a dict"),
        ('{"images": [1], "categories": []}', InvalidDatasetError, "images[0] is a int"),
    ],
    ids=["truncated", "empty", "garbage", "list", "no-sections", "images-not-a-list", "record-not-an-object"],
)
def test_unreadable_json_raises(make_coco, text: str, error: type[Exception], words: str) -> None:
    ann, images, _ = make_coco()
    ann.write_text(text, encoding="utf-8")
    with pytest.raises(error) as info:
        validate_dataset(ann, images, workers=1)
    assert str(info.value).startswith(str(ann))
    assert words in str(info.value)


def test_missing_annotation_file_and_image_folder(tmp_path: Path, make_coco) -> None:
    ann, images, _ = make_coco()
    with pytest.raises(UnreadableFileError, match="annotation file not found"):
        validate_dataset(tmp_path / "nope.json", images, workers=1)
    with pytest.raises(UnreadableFileError, match="image folder not found"):
        validate_dataset(ann, tmp_path / "nope", workers=1)


def test_bomb_is_refused_from_the_header(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(png_bomb_bytes())
    assert path.stat().st_size < 200
    with address_space_limit(1 << 30), pytest.raises(UnreadableFileError, match="decompression bomb"):
        read_image_size(path)
    # our own limit applies below Pillow's: a small file over max_pixels is refused the same way
    small = tmp_path / "small.png"
    assert cv2.imwrite(str(small), noise(24, 32))
    with pytest.raises(UnreadableFileError, match="over the limit of 700"):
        read_image_size(small, max_pixels=700)
    issue, = validate_files({"images": [{"id": 1, "file_name": "small.png", "width": 32, "height": 24}]},
                            tmp_path, workers=1, max_pixels=700, progress=False)
    assert (issue.severity.value, issue.code, issue.record_id) == ("error", "image-too-large", 1)


@pytest.mark.parametrize("decode", [False, True], ids=["headers", "decode"])
def test_truncated_files_are_found_without_decoding(tmp_path: Path, decode: bool) -> None:
    ok_png, png = cv2.imencode(".png", noise(24, 32))
    jpg, png = jpeg_bytes(), png.tobytes()
    files = {
        "cut.jpg": jpg[: len(jpg) // 2],
        "cut.png": png[: len(png) - 20],
        "trailing.jpg": jpg + b"vendor trailer after the EOI marker",  # harmless: must stay accepted
        "padded.jpg": jpg + b"\x00" * 16,
        "ok.jpg": jpg,
        "ok.png": png,
    }
    coco: dict[str, Any] = {"images": []}
    for k, (name, data) in enumerate(files.items()):
        (tmp_path / name).write_bytes(data)
        coco["images"].append({"id": k, "file_name": name, "width": 32, "height": 24})
    issues = validate_files(coco, tmp_path, decode=decode, workers=1, progress=False)
    assert [(i.code, Path(i.file).name) for i in issues] == [("unreadable-image", "cut.jpg"),
                                                            ("unreadable-image", "cut.png")]
    assert check_image_file(tmp_path / "trailing.jpg") == (32, 24)
    with pytest.raises(UnreadableFileError, match="truncated"):
        check_image_file(tmp_path / "cut.jpg")


@pytest.mark.parametrize(
    ("section", "key", "value", "code"),
    [
        ("images", "id", [10], "bad-id"),
        ("images", "file_name", ["a.png"], "unsafe-file-name"),
        ("annotations", "image_id", {"id": 10}, "unknown-image"),
        ("annotations", "category_id", [3], "unknown-category"),
        ("categories", "name", ["cat"], "bad-category-name"),
        ("images", "width", "32", "bad-image-size"),
        ("annotations", "segmentation", "polygon", "bad-segmentation"),
        ("annotations", "segmentation", [[2, 2, 10, 2, 10]], "bad-segmentation"),
        ("annotations", "segmentation", [[2, "2", 10, 2, 10, 10]], "bad-segmentation"),
        ("annotations", "iscrowd", 2, "bad-iscrowd"),
    ],
)
def test_malformed_values_are_errors_not_crashes(make_coco, section: str, key: str, value: Any, code: str) -> None:
    _, _, coco = make_coco(mutate=set_field(section, 0, **{key: value}))
    issues = validate_records(coco, "x.json")
    assert (code, "error") in {(i.code, i.severity.value) for i in issues}, issues

"""Commands other than ``validate`` refuse broken input in one line, write nothing, and drop it with --skip-invalid."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from coco_mutations import (
    Mutate,
    delete_field,
    jpeg_bytes,
    missing_file,
    png_bomb_bytes,
    set_field,
    wrong_size_file,
)


def run_datatools(*args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "datatools", *map(str, args)], capture_output=True, text=True,
                          timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def convert(command: str, ann: Path, images: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    args = ["convert", command, "--ann", ann, "--images", images, "--out", out, "--workers", "1", *extra]
    if command == "masks":
        args.append("--no-progress")
    return run_datatools(*args)


def _file(data: Callable[[], bytes], name: str = "a.jpg") -> Mutate:
    """Image 10 becomes ``name`` holding ``data()``."""

    def mutate(coco: dict[str, Any], images: Path) -> None:
        (images / name).write_bytes(data())
        coco["images"][0]["file_name"] = name

    return mutate


def _absolute(coco: dict[str, Any], images: Path) -> None:
    coco["images"][0]["file_name"] = str((images / "a.png").resolve())


def _dotdot(coco: dict[str, Any], images: Path) -> None:
    (images.parent / "a.png").write_bytes((images / "a.png").read_bytes())
    coco["images"][0]["file_name"] = "../a.png"


def _segm(value: Any) -> Mutate:
    return set_field("annotations", 0, segmentation=value)


# (case id, mutate, whose path the error line names: "json" or "image")
ERROR_CASES: list[tuple[str, Mutate, str]] = [
    ("missing-key", delete_field("annotations", 0, "image_id"), "json"),
    ("duplicate-image-id", set_field("images", 1, id=10), "json"),
    ("duplicate-annotation-id", set_field("annotations", 1, id=100), "json"),
    ("duplicate-category-id", set_field("categories", 1, id=3), "json"),
    ("unknown-image", set_field("annotations", 0, image_id=99), "json"),
    ("unknown-category", set_field("annotations", 0, category_id=99), "json"),
    ("empty-segmentation", _segm([]), "json"),
    ("null-segmentation", _segm(None), "json"),
    ("two-point-polygon", _segm([[2, 2, 10, 2]]), "json"),
    ("nan-coordinates", _segm([[2, math.nan, 10, 2, 10, 10]]), "json"),
    ("polygon-outside", _segm([[40, 30, 60, 30, 60, 50]]), "json"),
    ("rle-size-mismatch", _segm({"size": [10, 10], "counts": [0, 100]}), "json"),
    ("rle-counts-bad-sum", _segm({"size": [24, 32], "counts": [10, 20]}), "json"),
    ("rle-compressed-garbage", _segm({"size": [24, 32], "counts": "abc"}), "json"),
    ("absolute-file-name", _absolute, "json"),
    ("dotdot-file-name", _dotdot, "json"),
    ("missing-image", missing_file, "image"),
    ("not-an-image", _file(lambda: b"<html>not a picture</html>\n" * 9), "image"),
    ("truncated-jpeg", _file(lambda: jpeg_bytes()[: len(jpeg_bytes()) // 2]), "image"),
    ("wrong-size-image", wrong_size_file, "image"),
    ("decompression-bomb", _file(png_bomb_bytes, "a.png"), "image"),
]


def _assert_refused(proc: subprocess.CompletedProcess[str], named: Path, out: Path) -> None:
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"error: {named}: "), lines[0]
    assert not out.exists()


@pytest.mark.parametrize("command", ["masks", "coco"])
@pytest.mark.parametrize(("mutate", "named"), [c[1:] for c in ERROR_CASES], ids=[c[0] for c in ERROR_CASES])
def test_broken_input_is_refused(make_coco, tmp_path: Path, command: str, mutate: Mutate, named: str) -> None:
    ann, images, coco = make_coco(mutate=mutate)
    out = tmp_path / "out"
    proc = convert(command, ann, images, out)
    path = ann if named == "json" else images / coco["images"][0]["file_name"]
    _assert_refused(proc, path, out)
    assert proc.stdout == ""


@pytest.mark.parametrize("command", ["masks", "coco"])
@pytest.mark.parametrize(("text", "words"), [(None, "JSON at line"), ("[]", "top level is a JSON list")],
                         ids=["cut-in-half", "json-list"])
def test_unreadable_json_is_refused(make_coco, tmp_path: Path, command: str, text: str | None, words: str) -> None:
    ann, images, _ = make_coco()
    raw = ann.read_text(encoding="utf-8")
    ann.write_text(raw[: len(raw) // 2] if text is None else text, encoding="utf-8")
    out = tmp_path / "out"
    proc = convert(command, ann, images, out)
    _assert_refused(proc, ann, out)
    assert words in proc.stderr


def _read_out(out: Path) -> dict[str, Any]:
    return json.loads((out / "annotations.json").read_text(encoding="utf-8"))


# (case id, mutate, dropped (severity code record-id) lines, images kept, annotations kept)
SKIP_CASES: list[tuple[str, Mutate, list[str], list[int], list[int]]] = [
    ("unknown-category", set_field("annotations", 1, category_id=99), ["[unknown-category]"], [10, 20], [100, 102]),
    ("nan-coordinates", _segm([[2, math.nan, 10, 2, 10, 10]]), ["[nan-coordinates]"], [10, 20], [101, 102]),
    ("truncated-jpeg", _file(lambda: jpeg_bytes()[: len(jpeg_bytes()) // 2]), ["[unreadable-image]"], [20], [102]),
    ("dotdot-file-name", _dotdot, ["[unsafe-file-name]"], [20], [102]),
]


@pytest.mark.parametrize(("mutate", "reported", "image_ids", "ann_ids"), [c[1:] for c in SKIP_CASES],
                         ids=[c[0] for c in SKIP_CASES])
def test_skip_invalid_drops_and_reports(make_coco, tmp_path: Path, mutate: Mutate, reported: list[str],
                                        image_ids: list[int], ann_ids: list[int]) -> None:
    ann, images, _ = make_coco(mutate=mutate)
    out = tmp_path / "out"
    proc = convert("coco", ann, images, out, "--skip-invalid")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    assert lines[0] == f"warning: --skip-invalid dropped {len(reported)} record(s) with errors:"
    assert len(lines) == 1 + len(reported)
    for line, code in zip(lines[1:], reported, strict=True):
        assert line.endswith(code) and ": error: " in line
    written = _read_out(out)
    assert [r["id"] for r in written["images"]] == image_ids
    assert [r["id"] for r in written["annotations"]] == ann_ids
    assert [r["id"] for r in written["categories"]] == [3, 7]
    assert written["extra_top_level"] == {"kept": True}
    assert sorted(p.relative_to(out / "images").as_posix() for p in (out / "images").rglob("*") if p.is_file()) \
        == sorted(r["file_name"] for r in written["images"])
    assert proc.stdout.strip() == f"wrote {len(image_ids)} images and {len(ann_ids)} annotations to {out}"


def test_skip_invalid_masks_leaves_out_the_dropped_image(make_coco, tmp_path: Path) -> None:
    ann, images, _ = make_coco(mutate=missing_file)
    out = tmp_path / "out"
    proc = convert("masks", ann, images, out, "--skip-invalid")
    assert proc.returncode == 0, proc.stderr
    assert "dropped 1 record(s)" in proc.stderr and "[missing-image]" in proc.stderr
    masks = sorted(p.relative_to(out / "ann_dir").as_posix() for p in (out / "ann_dir").rglob("*.png"))
    assert masks == ["sub/b.png"]
    assert not (out / "img_dir" / "a.png").exists() and (out / "img_dir" / "sub" / "b.png").is_file()


@pytest.mark.parametrize("command", ["masks", "coco"])
def test_existing_out_is_refused_then_overwritten(make_coco, tmp_path: Path, command: str) -> None:
    ann, images, _ = make_coco()
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine", encoding="utf-8")
    proc = convert(command, ann, images, out)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [f"error: {out}: output directory is not empty (pass --overwrite to replace "
                                        "it)"]
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and (out / "keep.txt").read_text() == "mine"

    proc = convert(command, ann, images, out, "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert not (out / "keep.txt").exists()
    if command == "coco":
        assert [r["id"] for r in _read_out(out)["annotations"]] == [100, 101, 102]
    else:
        assert (out / "classes.json").is_file() and (out / "ann_dir" / "sub" / "b.png").is_file()

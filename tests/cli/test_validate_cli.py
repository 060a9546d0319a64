"""``datatools validate`` as a user runs it: exit codes, text and JSON output, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from datatools.validation import validate_dataset

Mutate = Callable[[dict[str, Any], Path], None]


def run_validate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([sys.executable, "-m", "datatools", "validate", "--workers", "1", *map(str, args)],
                          capture_output=True, text=True, timeout=120)
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr
    return proc


def _category_zero(coco: dict[str, Any], images: Path) -> None:
    coco["categories"][0]["id"] = 0
    coco["annotations"][0]["category_id"] = 0


def _errors(coco: dict[str, Any], images: Path) -> None:
    coco["annotations"][1]["category_id"] = 99
    (images / "sub" / "b.png").unlink()


def _no_annotations(coco: dict[str, Any], images: Path) -> None:
    coco["annotations"].pop()


CASES: list[tuple[str, Mutate | None, list[str], int, tuple[int, int, int]]] = [
    ("clean", None, [], 0, (0, 0, 0)),
    ("clean-strict", None, ["--strict"], 0, (0, 0, 0)),
    ("errors", _errors, [], 1, (2, 0, 0)),
    ("warnings-only", _category_zero, [], 0, (0, 1, 0)),
    ("warnings-strict", _category_zero, ["--strict"], 1, (0, 1, 0)),
    ("info-only-strict", _no_annotations, ["--strict"], 0, (0, 0, 1)),
]


@pytest.mark.parametrize(("mutate", "args", "code", "counts"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_exit_codes(make_coco, mutate: Mutate | None, args: list[str], code: int,
                    counts: tuple[int, int, int]) -> None:
    ann, images, _ = make_coco(mutate=mutate)
    proc = run_validate("--ann", ann, "--images", images, "--no-decode", *args)
    assert proc.returncode == code, proc.stdout + proc.stderr
    errors, warnings, infos = counts
    lines = proc.stdout.strip().splitlines()
    assert lines[-1] == f"{ann}: {errors} errors, {warnings} warnings, {infos} info"
    assert len(lines) == 1 + errors + warnings + infos  # one line per issue, then the summary


def test_text_output_names_files_and_records(make_coco) -> None:
    ann, images, _ = make_coco(mutate=_errors)
    proc = run_validate("--ann", ann, "--images", images)
    assert proc.returncode == 1
    assert f"{ann}: error: annotation id 101: category_id 99 matches no category [unknown-category]" in proc.stdout
    missing = images / "sub" / "b.png"
    assert f"{missing}: error: image id 20: file not found under the image root [missing-image]" in proc.stdout


def test_json_output_holds_every_issue(make_coco) -> None:
    def mutate(coco: dict[str, Any], images: Path) -> None:
        _errors(coco, images)
        _category_zero(coco, images)
        coco["annotations"][2]["segmentation"] = [[20, 10, 40, 10, 40, 30]]  # partly outside: warning
        coco["images"].append({"id": 30, "file_name": "a.png", "width": 32, "height": 24})  # no annotations

    ann, images, _ = make_coco(mutate=mutate)
    proc = run_validate("--ann", ann, "--images", images, "--json")
    assert proc.returncode == 1
    report = json.loads(proc.stdout)
    expected = validate_dataset(ann, images, workers=1).issues
    assert report["issues"] == [i.to_dict() for i in expected]
    assert report["summary"] == {"error": 2, "warning": 4, "info": 1}
    assert report["annotations"] == str(ann) and report["images"] == str(images)
    found = {(i["severity"], i["code"], i["record_id"]) for i in report["issues"]}
    assert found == {
        ("error", "unknown-category", 101),
        ("error", "missing-image", 20),
        ("warning", "category-id-zero", 0),
        ("warning", "partly-outside-image", 102),
        ("warning", "duplicate-file-name", 10),
        ("warning", "duplicate-file-name", 30),
        ("info", "no-annotations", 30),
    }


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (None, "JSON at line 1 column"),  # the fixture cut in half
        ('{"images": [], "categories": [{"id": 1, ', "truncated JSON at line 1 column"),
        ("[1, 2]", "top level is a JSON list, expected an object"),
    ],
    ids=["json-cut-in-half", "json-cut-between-tokens", "json-list"],
)
def test_unreadable_input_exits_2(make_coco, text: str | None, words: str) -> None:
    ann, images, _ = make_coco()
    raw = ann.read_text(encoding="utf-8")
    ann.write_text(raw[: len(raw) // 2] if text is None else text, encoding="utf-8")
    proc = run_validate("--ann", ann, "--images", images, "--json")
    assert proc.returncode == 2
    assert proc.stdout == ""
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {ann}: ") and words in lines[0]


def test_missing_image_folder_exits_2(make_coco, tmp_path: Path) -> None:
    ann, _, _ = make_coco()
    proc = run_validate("--ann", ann, "--images", tmp_path / "absent")
    assert proc.returncode == 2
    assert proc.stderr.strip() == f"error: {tmp_path / 'absent'}: image folder not found"

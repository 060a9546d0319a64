"""Every ``edit`` subcommand refuses a broken dataset in one line naming the file (exit 2, nothing written), refuses a
non-empty --out unless --overwrite, and with --skip-invalid drops the bad records and goes on."""

from __future__ import annotations

from pathlib import Path

import pytest
from coco_mutations import missing_file, set_field
from edit_checks import check_dataset, invoke

# the options that make each subcommand valid on the tiny fixture (2 images, categories cat=3 and dog=7)
SUBCOMMANDS = {
    "classes": ["--rename", "cat=kitten"],
    "split": ["--ratios", "0.5,0.5"],
    "subset": ["--has-class", "dog"],
}


def _src(ann: Path, images: Path) -> list[str | Path]:
    return ["--ann", ann, "--images", images]


@pytest.mark.parametrize("command", [*SUBCOMMANDS, "merge"])
@pytest.mark.parametrize(("mutate", "named"), [(set_field("annotations", 0, category_id=99), "json"),
                                               (missing_file, "image")], ids=["unknown-category", "missing-image"])
def test_broken_input_is_one_line_naming_the_file(make_coco, tmp_path: Path, command: str, mutate, named: str
                                                  ) -> None:
    ann, images, coco = make_coco(tmp_path / "bad", mutate)
    out = tmp_path / "out"
    if command == "merge":
        good_ann, good_images, _ = make_coco(tmp_path / "good")
        args = [*_src(good_ann, good_images), *_src(ann, images)]
    else:
        args = [*_src(ann, images), *SUBCOMMANDS[command]]
    result = invoke("edit", command, *args, "--out", out, code=2)
    path = ann if named == "json" else images / coco["images"][0]["file_name"]
    assert result.stderr.startswith(f"error: {path}: ")
    assert not out.exists() and result.stdout == ""


def test_existing_out_then_overwrite_then_skip_invalid(make_coco, tmp_path: Path) -> None:
    ann, images, _ = make_coco(tmp_path / "src", set_field("annotations", 1, category_id=99))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    result = invoke("edit", "subset", *_src(ann, images), "--has-class", "dog", "--skip-invalid", "--out", out,
                    code=2)
    assert "output directory is not empty" in result.stderr and [p.name for p in out.iterdir()] == ["keep.txt"]
    result = invoke("edit", "subset", *_src(ann, images), "--has-class", "dog", "--skip-invalid", "--overwrite",
                    "--out", out)
    assert "dropped 1 record(s)" in result.stderr
    coco = check_dataset(out)
    assert [i["id"] for i in coco["images"]] == [20] and [a["id"] for a in coco["annotations"]] == [102]
    assert not (out / "keep.txt").exists() and coco["extra_top_level"] == {"kept": True}

"""``datatools edit subset``: exactly the images every criterion selects (or the others with --exclude), with their
annotations untouched; a findings table of another dataset is refused."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

import pytest
from edit_checks import check_annotation_kept, check_dataset, check_image_kept, invoke, load

from datatools.clean.findings import Finding, write_findings
from datatools.core.issues import Severity


def _findings(path: Path, coco: dict, rows: list[tuple[int, str]]) -> None:
    """A findings.parquet as `datatools clean` writes it: (image position, kind) per finding."""
    imgs = coco["images"]
    write_findings(path, [Finding(kind, kind, Severity.WARNING, 1.0, imgs[k]["id"], imgs[k]["file_name"], "test",
                                  image_index=k) for k, kind in rows])


def _expected(coco: dict, keep) -> list:
    return [img["id"] for img in coco["images"] if keep(img)]


def test_criteria_combine_and_exclude_inverts(base: Path, tmp_path: Path) -> None:
    src = load(base)
    imgs = src["images"]
    syringe = next(c["id"] for c in src["categories"] if c["name"] == "syringe")
    holding = {a["image_id"] for a in src["annotations"] if a["category_id"] == syringe}
    pattern = imgs[3]["file_name"][:6] + "*"
    _findings(tmp_path / "f.parquet", src, [(1, "duplicate-near"), (2, "outlier-image"), (4, "duplicate-near")])
    cases = [
        (["--ids", f"{imgs[0]['id']},{imgs[5]['id']}", "--ids", str(imgs[7]["id"])],
         lambda i: i["id"] in {imgs[0]["id"], imgs[5]["id"], imgs[7]["id"]}),
        (["--name", pattern], lambda i: fnmatch.fnmatchcase(i["file_name"], pattern)),
        (["--regex", r"rf\.[0-7]", "--has-class", "syringe"],
         lambda i: re.search(r"rf\.[0-7]", i["file_name"]) is not None and i["id"] in holding),
        (["--has-class", "syringe", "--exclude"], lambda i: i["id"] not in holding),
        (["--findings", tmp_path / "f.parquet", "--exclude"],
         lambda i: i["id"] not in {imgs[k]["id"] for k in (1, 2, 4)}),
        (["--findings", tmp_path / "f.parquet", "--kinds", "duplicate-near"],
         lambda i: i["id"] in {imgs[1]["id"], imgs[4]["id"]}),
    ]
    src_img = {i["id"]: i for i in imgs}
    for n, (args, keep) in enumerate(cases):
        out = tmp_path / f"out{n}"
        invoke("edit", "subset", "--data", base, *args, "--out", out)
        coco = check_dataset(out)
        expected = _expected(src, keep)
        assert 0 < len(expected) < len(imgs), args  # each case selects something and not everything
        assert [i["id"] for i in coco["images"]] == expected, args
        assert [a["id"] for a in coco["annotations"]] == [a["id"] for a in src["annotations"]
                                                          if a["image_id"] in set(expected)]
        assert coco["categories"] == src["categories"] and coco["x_custom"] == src["x_custom"]
        for img in coco["images"]:
            check_image_kept(src_img[img["id"]], img)
        if n == 0:
            src_ann = {a["id"]: a for a in src["annotations"]}
            for a in coco["annotations"]:
                check_annotation_kept(src_ann[a["id"]], src_img[a["image_id"]], a, src_img[a["image_id"]])


@pytest.mark.parametrize(("args", "words"), [
    (["--ids", "123456"], "no image with id 123456"),
    (["--has-class", "battery"], "no category 'battery'"),
    (["--name", "nothing*"], "keeps no image"),
    (["--kinds", "duplicate-near"], "--kinds goes with --findings"),
    ([], "nothing selects images"),
])
def test_bad_selections_are_one_line(base: Path, tmp_path: Path, args: list[str], words: str) -> None:
    out = tmp_path / "out"
    result = invoke("edit", "subset", "--data", base, *args, "--out", out, code=2)
    assert words in result.stderr and not out.exists()


def test_an_unknown_kind_is_refused(base: Path, tmp_path: Path) -> None:
    _findings(tmp_path / "f.parquet", load(base), [(1, "duplicate-near")])
    out = tmp_path / "out"
    result = invoke("edit", "subset", "--data", base, "--findings", tmp_path / "f.parquet", "--kinds", "dupe",
                    "--exclude", "--out", out, code=2)
    assert "'dupe' is neither a finding kind" in result.stderr and not out.exists()


def test_findings_of_another_dataset_are_refused(base: Path, tmp_path: Path) -> None:
    src = load(base)
    other = {"images": [dict(img, file_name="x" + img["file_name"]) for img in src["images"]]}
    _findings(tmp_path / "f.parquet", other, [(0, "duplicate-near")])
    out = tmp_path / "out"
    result = invoke("edit", "subset", "--data", base, "--findings", tmp_path / "f.parquet", "--out", out, code=2)
    assert "made for another dataset" in result.stderr and not out.exists()

"""``datatools edit merge``: ids unique, categories matched by name, every annotation's pixels and class kept,
provenance renumbered with the images (and recorded per image), colliding file names moved, conflicts refused."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edit_checks import EXAMPLE, base_coco, check_annotation_kept, check_dataset, check_image_kept, invoke, load

from datatools.folds.provenance import read_provenance


def _other(root: Path) -> dict[str, Any]:
    """The base without its first image, category ids shifted by 10 and listed in reverse: only names match."""
    coco = base_coco(12)
    gone = coco["images"][0]["id"]
    coco["images"] = coco["images"][1:]
    coco["annotations"] = [dict(a, category_id=a["category_id"] + 10) for a in coco["annotations"]
                           if a["image_id"] != gone]
    coco["categories"] = [dict(c, id=c["id"] + 10) for c in reversed(coco["categories"])]
    coco["categories"].append({"id": 99, "name": "battery", "supercategory": "medical-waste"})
    (root / "images").mkdir(parents=True)
    for img in coco["images"]:
        (root / "images" / img["file_name"]).symlink_to(EXAMPLE / img["file_name"])
    (root / "annotations.json").write_text(json.dumps(coco))
    return coco


def test_merge_keeps_every_record_and_pixel(base: Path, tmp_path: Path) -> None:
    first, second = load(base), _other(tmp_path / "second")
    out = tmp_path / "merged"
    result = invoke("edit", "merge", "--data", base, "--data", tmp_path / "second", "--out", out)
    coco = check_dataset(out)
    assert len(coco["images"]) == len(first["images"]) + len(second["images"])
    assert len(coco["annotations"]) == len(first["annotations"]) + len(second["annotations"])
    assert f"({len(second['images'])} files renamed)" in result.stdout
    assert [c["name"] for c in coco["categories"]] == [c["name"] for c in first["categories"]] + ["battery"]
    assert coco["x_custom"] == first["x_custom"]
    name_out = {c["id"]: c["name"] for c in coco["categories"]}
    inputs = {base.name: first, "second": second}
    merged_id: dict[tuple[str, Any], Any] = {}
    for img in coco["images"]:
        origin = img["datatools"]["origin"]
        merged_id[(origin["dataset"], origin["id"])] = img["id"]
    for img in coco["images"]:
        origin = img["datatools"]["origin"]
        src = inputs[origin["dataset"]]
        src_img = next(i for i in src["images"] if i["id"] == origin["id"])
        assert origin["file_name"] == src_img["file_name"]
        assert img["file_name"] == src_img["file_name"] if origin["dataset"] == base.name else \
            img["file_name"] == f"second/{src_img['file_name']}"
        check_image_kept(src_img, img, extra_datatools={"origin"})
        # provenance: a source in the same input is its merged id; one outside it cannot name another's image
        for s_old, s_new in zip((src_img.get("datatools") or {}).get("sources", []),
                                img["datatools"].get("sources", []), strict=True):
            assert s_new == merged_id.get((origin["dataset"], s_old), f"{origin['dataset']}:{s_old}")
        name_in = {c["id"]: c["name"] for c in src["categories"]}
        src_anns = [a for a in src["annotations"] if a["image_id"] == src_img["id"]]
        out_anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        assert len(src_anns) == len(out_anns)
        for a, b in zip(src_anns, out_anns, strict=True):
            check_annotation_kept(a, src_img, b, img)
            assert name_out[b["category_id"]] == name_in[a["category_id"]]
    links = read_provenance(coco["images"])
    assert links.derived == 10 and links.unresolved == 1  # second's first flip lost its source (not merged)


def test_merge_of_identical_category_lists_keeps_duplicate_names(make_coco, tmp_path: Path) -> None:
    def dup(coco: dict[str, Any], images: Path) -> None:
        coco["categories"][1]["name"] = coco["categories"][0]["name"]

    a = make_coco(tmp_path / "a", dup)
    b = make_coco(tmp_path / "b", dup)
    out = tmp_path / "out"
    invoke("edit", "merge", "--ann", a[0], "--images", a[1], "--ann", b[0], "--images", b[1], "--out", out)
    coco = check_dataset(out)
    assert coco["categories"] == a[2]["categories"]
    assert [a_["category_id"] for a_ in coco["annotations"]] == [3, 7, 7, 3, 7, 7]


def test_unmatchable_names_are_one_line_and_write_nothing(make_coco, base: Path, tmp_path: Path) -> None:
    def dup(coco: dict[str, Any], images: Path) -> None:
        coco["categories"][1]["name"] = coco["categories"][0]["name"]

    ann, images, _ = make_coco(tmp_path / "dup", dup)
    out = tmp_path / "out"
    result = invoke("edit", "merge", "--data", base, "--ann", ann, "--images", images, "--out", out, code=2)
    assert "'cat' is held by two categories" in result.stderr and str(ann) in result.stderr
    assert not out.exists()
    result = invoke("edit", "merge", "--data", base, "--ann", ann, "--out", out, code=2)
    assert "one --images per --ann" in result.stderr and not out.exists()

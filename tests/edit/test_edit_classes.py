"""``datatools edit classes`` through the CLI: classes dropped, merged, renamed, reordered, renumbered; the rest of
every record and every pixel unchanged; ignore regions exact; odd names reachable by the escaping rule."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from edit_checks import check_annotation_kept, check_dataset, check_image_kept, invoke, load, pixels

from datatools.core.classes import ClassMap, placeholder_category_ids
from datatools.core.masks import rasterize_semantic, rle_to_mask
from datatools.edit.refs import ClassRef, parse_list, parse_pair, split_escaped


def test_everything_at_once_keeps_every_pixel_and_field(base: Path, tmp_path: Path) -> None:
    src = load(base)
    out = tmp_path / "out"
    invoke("edit", "classes", "--data", base, "--drop", "Mask", "--merge", "sharps=syringe,ampoule", "--rename",
           "Blood bag=blood", "--reorder", "sharps,blood", "--drop-empty", "--reindex", "--out", out)
    coco = check_dataset(out)
    assert [(c["id"], c["name"]) for c in coco["categories"]] == [(1, "sharps"), (2, "blood")]
    assert coco["x_custom"] == src["x_custom"] and coco["info"] == src["info"]
    name = {c["id"]: c["name"] for c in src["categories"]}
    expected_name = {"syringe": "sharps", "ampoule": "sharps", "Blood bag": "blood"}
    out_name = {c["id"]: c["name"] for c in coco["categories"]}
    kept = [a for a in src["annotations"] if name[a["category_id"]] != "Mask"]
    by_id = {a["id"]: a for a in coco["annotations"]}
    assert sorted(by_id) == sorted(a["id"] for a in kept)  # annotation ids kept, Mask's gone
    src_img = {i["id"]: i for i in src["images"]}
    out_img = {i["id"]: i for i in coco["images"]}
    assert list(out_img) == list(src_img)
    for img_id, img in src_img.items():
        check_image_kept(img, out_img[img_id])
    for a in kept:
        b = by_id[a["id"]]
        check_annotation_kept(a, src_img[a["image_id"]], b, out_img[b["image_id"]])
        assert out_name[b["category_id"]] == expected_name[name[a["category_id"]]]
    # the one rasteriser: the semantic mask of every image is the input's with Mask's pixels painted as before
    cm_in, cm_out = ClassMap.from_categories(src["categories"]), ClassMap.from_categories(coco["categories"])
    value = np.zeros(256, dtype=np.uint8)
    value[255] = 255
    for c in src["categories"]:
        if name[c["id"]] in expected_name:
            value[cm_in.value_of(c["id"])] = cm_out.value_of(
                next(o["id"] for o in coco["categories"] if o["name"] == expected_name[name[c["id"]]]))
    for img in src["images"][:12]:
        h, w = img["height"], img["width"]
        before = rasterize_semantic([a for a in kept if a["image_id"] == img["id"]], h, w, cm_in)
        after = rasterize_semantic([a for a in coco["annotations"] if a["image_id"] == img["id"]], h, w, cm_out)
        assert np.array_equal(value[before], after)


def test_drop_as_ignore_turns_exactly_the_dropped_pixels_into_ignore(base: Path, tmp_path: Path) -> None:
    src = load(base)
    out = tmp_path / "out"
    result = invoke("edit", "classes", "--data", base, "--drop", "Mask", "--as-ignore", "--out", out)
    coco = check_dataset(out)
    mask_id = next(c["id"] for c in src["categories"] if c["name"] == "Mask")
    dropped = [a for a in src["annotations"] if a["category_id"] == mask_id]
    assert len(dropped) >= 3 and f"{len(dropped)} of them as ignore regions" in result.stdout
    assert [c["name"] for c in coco["categories"]] == ["medical-waste", "Blood bag", "ampoule", "syringe"]
    cm = ClassMap.from_categories(coco["categories"])
    for img, new in zip(src["images"], coco["images"], strict=True):
        h, w = img["height"], img["width"]
        expected = np.zeros((h, w), dtype=bool)
        for rle in (img.get("datatools") or {}).get("ignore", []):  # the ignore region already there stays
            expected |= rle_to_mask(rle)
        for a in dropped:
            if a["image_id"] == img["id"]:
                expected |= pixels(a, img)
        check_image_kept(img, new, extra_datatools={"ignore"})
        anns = [a for a in coco["annotations"] if a["image_id"] == img["id"]]
        semantic = rasterize_semantic(anns, h, w, cm, ignore=(new.get("datatools") or {}).get("ignore", []))
        assert np.array_equal(semantic == 255, expected), img["id"]


def test_drop_empty_recognises_the_roboflow_placeholder_only() -> None:
    src = json.loads((Path(__file__).parents[2] / "examples/medical_waste/train/_annotations.coco.json").read_text())
    assert placeholder_category_ids(src["categories"], src["annotations"]) == [0]
    used = [*src["annotations"], {"category_id": 0}]
    assert placeholder_category_ids(src["categories"], used) == []  # it has annotations: a real class
    cats = [{**c, "supercategory": "x"} if c["id"] == 2 else c for c in src["categories"]]
    assert placeholder_category_ids(cats, src["annotations"]) == []  # not everyone's supercategory
    assert placeholder_category_ids(src["categories"][:1], []) == []  # alone: nothing to be the parent of


def test_escaping_rule() -> None:
    assert split_escaped(r"a\,b,c", ",") == [r"a\,b", "c"]
    assert parse_list(r"a\,b,id:3,\id:3,x\\") == [ClassRef("a,b"), ClassRef(id=3), ClassRef("id:3"), ClassRef("x\\")]
    assert parse_pair(r"x\=y=z", False) == (ClassRef("x=y"), "z")
    assert parse_pair(r"n\,ew=a,b\=c", True) == ("n,ew", [ClassRef("a"), ClassRef("b=c")])
    for bad in ("a", "=x", "x="):
        with pytest.raises(ValueError):
            parse_pair(bad, True)
    with pytest.raises(ValueError):
        split_escaped("a\\", ",")


def test_odd_names_are_reachable(make_coco, tmp_path: Path) -> None:
    names = {3: "a,b", 7: "x=y", 8: "dup", 9: "dup", 11: "id:3", 12: "ü 注射器 [b]"}

    def mutate(coco: dict, images: Path) -> None:
        coco["categories"] = [{"id": i, "name": n, "supercategory": ""} for i, n in names.items()]
        for k, a in enumerate(coco["annotations"]):
            a["category_id"] = (3, 8, 9)[k]

    ann, images, coco = make_coco(tmp_path / "odd", mutate)
    out = tmp_path / "out"
    invoke("edit", "classes", "--ann", ann, "--images", images, "--rename", r"a\,b=comma", "--merge",
           r"eq=x\=y,\id:3", "--drop", "id:9", "--rename", "ü 注射器 [b]=u", "--out", out)
    got = check_dataset(out)
    assert [(c["id"], c["name"]) for c in got["categories"]] == [(3, "comma"), (7, "eq"), (8, "dup"), (12, "u")]
    assert [(a["id"], a["category_id"]) for a in got["annotations"]] == [(100, 3), (101, 8)]
    # a name shared by two categories names both
    out2 = tmp_path / "out2"
    invoke("edit", "classes", "--ann", ann, "--images", images, "--drop", "dup", "--out", out2)
    assert [c["id"] for c in load(out2)["categories"]] == [3, 7, 11, 12]


def test_same_inputs_same_bytes(base: Path, tmp_path: Path) -> None:
    for name in ("a", "b"):
        invoke("edit", "classes", "--data", base, "--drop-empty", "--reindex", "--out", tmp_path / name)
    for rel in ("annotations.json", "summary.json"):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


@pytest.mark.parametrize(("args", "words"), [
    (["--drop", "nope"], "no category 'nope'"),
    (["--merge", "sharps=syringe,nope"], "no category 'nope'"),
    (["--merge", "Mask=syringe,ampoule"], "another class"),
    (["--merge", "a=syringe", "--merge", "b=syringe"], "two merges"),
    (["--rename", "Mask=syringe"], "use --merge"),
    (["--reorder", "id:77"], "no category id:77"),
    (["--as-ignore", "--reindex"], "--as-ignore goes with --drop"),
    ([], "nothing to do"),
])
def test_bad_edits_are_one_line_and_write_nothing(base: Path, tmp_path: Path, args: list[str], words: str) -> None:
    out = tmp_path / "out"
    result = invoke("edit", "classes", "--data", base, *args, "--out", out, code=2)
    assert words in result.stderr
    assert not out.exists()


def test_every_class_dropped_is_refused(base: Path, tmp_path: Path) -> None:
    shutil.rmtree(tmp_path / "out", ignore_errors=True)
    result = invoke("edit", "classes", "--data", base, "--drop", "medical-waste", "--drop", "Mask", "--drop",
                    "Blood bag", "--drop", "ampoule", "--drop", "syringe", "--out", tmp_path / "out", code=2)
    assert "leaves no category" in result.stderr and not (tmp_path / "out").exists()

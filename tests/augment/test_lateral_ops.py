"""Every offline op that mirrors an image puts the mirrored class on the mirrored side: on a synthetic image with
``left_x`` on one side and ``right_x`` on the other (and ``upper_y``/``lower_y`` above and below), the output's
semantic mask, rendered by the one rasteriser, is the source's mask mirrored with the paired values swapped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
from lateral_data import H, W, write_lateral
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.classes import ClassMap
from datatools.core.masks import rasterize_semantic

#: mask values (1..5 in category order): left_x <-> right_x under horizontal mirrors, upper_y <-> lower_y vertical
SWAP_H = np.array([0, 2, 1, 3, 4, 5], np.uint8)
SWAP_V = np.array([0, 1, 2, 3, 5, 4], np.uint8)


def _lut(lut: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    full = np.arange(256, dtype=np.uint8)
    full[:len(lut)] = lut
    return full


@pytest.fixture
def lateral_ds(tmp_path: Path) -> tuple[Path, Path]:
    return write_lateral(tmp_path / "src"), tmp_path / "src" / "images"


def _semantic(coco: dict[str, Any], image: dict[str, Any]) -> npt.NDArray[np.uint8]:
    anns = [a for a in coco["annotations"] if a["image_id"] == image["id"]]
    return rasterize_semantic(anns, image["height"], image["width"], ClassMap.from_categories(coco["categories"]))


def _invoke(*args: str) -> Any:
    return CliRunner().invoke(app, list(args))


def _run(op: str, ann: Path, images: Path, out: Path, *extra: str) -> tuple[dict[str, Any], dict[str, Any], str]:
    result = _invoke("augment", op, "--ann", str(ann), "--images", str(images), "--out", str(out), "--workers", "1",
                     "--no-progress", *extra)
    assert result.exit_code == 0, result.output
    return json.loads(ann.read_text()), json.loads((out / "annotations.json").read_text()), result.output


def _pairs(src: dict[str, Any], out: dict[str, Any]) -> list[tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8],
                                                                  dict[str, Any]]]:
    by_id = {img["id"]: img for img in src["images"]}
    return [(_semantic(src, by_id[img["datatools"]["sources"][0]]), _semantic(out, img), img) for img in out["images"]]


@pytest.mark.parametrize("segmentation", ["rle", "polygon"])
def test_flip_swaps_pairs_on_the_mirrored_side(lateral_ds: tuple[Path, Path], tmp_path: Path,
                                               segmentation: str) -> None:
    src, out, output = _run("flip", *lateral_ds, tmp_path / "out", "--directions", "h,v,hv",
                            "--segmentation", segmentation)
    assert "lateral pair: left_x <-> right_x (horizontal flips)" in output
    assert "lateral pair: upper_y <-> lower_y (vertical flips)" in output
    seen = set()
    for before, after, img in _pairs(src, out):
        d = img["datatools"]["params"]["direction"]
        expected = before[:, ::-1] if "h" in d else before
        expected = expected[::-1] if "v" in d else expected
        lut = _lut(SWAP_H if "h" in d else np.arange(6, dtype=np.uint8))
        lut = _lut(SWAP_V)[lut] if "v" in d else lut
        np.testing.assert_array_equal(after, lut[expected])
        assert img["datatools"]["params"]["lateral"] == {"horizontal": [[1, 2]], "vertical": [[4, 5]],
                                                         "source": "auto"}
        seen.add(d)
    assert seen == {"h", "v", "hv"}
    # the convention survives the flip: left_x sits on the image's right, as in the sources
    h_img = next(img for img in out["images"] if img["datatools"]["params"]["direction"] == "h")
    left_x = [a for a in out["annotations"] if a["image_id"] == h_img["id"] and a["category_id"] == 1]
    assert left_x and all(a["bbox"][0] >= W // 2 for a in left_x)


def test_flip_with_none_keeps_names_and_warns_once(lateral_ds: tuple[Path, Path], tmp_path: Path) -> None:
    result = _invoke("augment", "flip", "--ann", str(lateral_ds[0]), "--images", str(lateral_ds[1]), "--out",
                     str(tmp_path / "out"), "--workers", "1", "--no-progress", "--lateral-pairs", "none")
    assert result.exit_code == 0, result.output
    assert result.output.count("--lateral-pairs none keeps") == 1
    src, out = json.loads(lateral_ds[0].read_text()), json.loads((tmp_path / "out" / "annotations.json").read_text())
    for before, after, _ in _pairs(src, out):
        np.testing.assert_array_equal(after, before[:, ::-1])


def test_flip_with_named_pairs(lateral_ds: tuple[Path, Path], tmp_path: Path) -> None:
    src, out, _ = _run("flip", *lateral_ds, tmp_path / "out", "--lateral-pairs", "left_x=right_x")
    for before, after, img in _pairs(src, out):
        np.testing.assert_array_equal(after, _lut(SWAP_H)[before[:, ::-1]])
        assert img["datatools"]["params"]["lateral"]["source"] == "named"


def test_rotate_half_turn_swaps_both_and_quarter_turns_need_a_rule(lateral_ds: tuple[Path, Path],
                                                                    tmp_path: Path) -> None:
    src, out, _ = _run("rotate", *lateral_ds, tmp_path / "half", "--angles", "180")
    for before, after, _ in _pairs(src, out):
        np.testing.assert_array_equal(after, _lut(SWAP_V)[_lut(SWAP_H)[before[::-1, ::-1]]])
    refused = _invoke("augment", "rotate", "--ann", str(lateral_ds[0]), "--images", str(lateral_ds[1]), "--out",
                      str(tmp_path / "quarter"), "--angles", "90", "--no-progress")
    assert refused.exit_code == 2 and "quarter turns" in refused.output and "Traceback" not in refused.output
    assert not (tmp_path / "quarter").exists()
    src, out, _ = _run("rotate", *lateral_ds, tmp_path / "named", "--angles", "90", "--lateral-pairs", "none")
    for before, after, _ in _pairs(src, out):
        np.testing.assert_array_equal(after, np.rot90(before, 1))


def test_copy_paste_flipped_objects_take_their_pair(lateral_ds: tuple[Path, Path], tmp_path: Path) -> None:
    src, out, _ = _run("copy-paste", *lateral_ds, tmp_path / "out", "--classes", "left_x,right_x", "--flip-prob",
                       "1", "--scale-range", "1,1", "--objects-range", "1,1", "--max-occlusion", "1", "-n", "6")
    src_anns = {a["id"]: a for a in src["annotations"]}
    cm = ClassMap.from_categories(src["categories"])
    pasted = 0
    for img in out["images"]:
        for a in (a for a in out["annotations"] if a["image_id"] == img["id"]):
            origin = src_anns[a["datatools"]["source_annotation_id"]]
            if a["datatools"]["source_image_id"] == img["datatools"]["sources"][0]:
                continue  # the target's own object
            pasted += 1
            assert {origin["category_id"], a["category_id"]} == {1, 2}  # left_x pasted as right_x and back
            donor = rasterize_semantic([origin], H, W, cm) > 0
            mask = rasterize_semantic([a], img["height"], img["width"], ClassMap.from_categories(out["categories"]))
            assert set(np.unique(mask)) == {0, cm.value_of(a["category_id"])}
            ys, xs = np.nonzero(donor)
            crop = donor[ys.min():ys.max() + 1, xs.min():xs.max() + 1]
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(mask[ys.min():ys.max() + 1, xs.min():xs.max() + 1] > 0, crop[:, ::-1])
    assert pasted == 6


def test_albu_swaps_pairs_on_the_flips_it_applied(lateral_ds: tuple[Path, Path], tmp_path: Path) -> None:
    import albumentations as A

    pipeline = tmp_path / "pipeline.yaml"
    A.save(A.Compose([A.HorizontalFlip(p=0.5)]), str(pipeline), data_format="yaml")
    src, out, output = _run("albu", *lateral_ds, tmp_path / "out", "--pipeline", str(pipeline), "--copies", "8")
    assert "lateral pair: left_x <-> right_x" in output
    flipped = kept = 0
    for before, after, _ in _pairs(src, out):
        if np.array_equal(after, before):
            kept += 1
        else:
            np.testing.assert_array_equal(after, _lut(SWAP_H)[before[:, ::-1]])
            flipped += 1
    assert flipped and kept
    A.save(A.Compose([A.RandomRotate90(p=1.0)]), str(pipeline), data_format="yaml")
    refused = _invoke("augment", "albu", "--ann", str(lateral_ds[0]), "--images", str(lateral_ds[1]), "--out",
                      str(tmp_path / "r90"), "--pipeline", str(pipeline), "--no-progress")
    assert refused.exit_code == 2 and "RandomRotate90" in refused.output and not (tmp_path / "r90").exists()


def test_bad_lateral_pairs_fail_before_work(lateral_ds: tuple[Path, Path], tmp_path: Path) -> None:
    for spec, message in (("left_x", "LEFT=RIGHT"), ("left_x=nope", "'nope' is not a class")):
        result = _invoke("augment", "flip", "--ann", str(lateral_ds[0]), "--images", str(lateral_ds[1]), "--out",
                         str(tmp_path / "out"), "--lateral-pairs", spec, "--no-progress")
        assert result.exit_code == 2 and message in result.output and "Traceback" not in result.output
        assert not (tmp_path / "out").exists()

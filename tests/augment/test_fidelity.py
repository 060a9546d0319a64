"""Label fidelity per op: re-render the OUTPUT annotations with the rasteriser and compare them with the same
transform applied to the SOURCE masks by an independent reference written here.

Exact (pixel for pixel) for flips, 90-degree rotations, mosaic/RICAP cuts (also through a resize), unscaled
copy-paste and an albumentations flip/transpose; IoU >= 0.98 per object for arbitrary angles and scaled or
rotated pastes, against a numpy bilinear inverse warp of the source mask.
"""

from __future__ import annotations

import functools
import json
import math
from fractions import Fraction
from pathlib import Path
from typing import Any

import albumentations as A
import cv2
import numpy as np
import numpy.typing as npt
import pytest

from datatools.augment import (
    AlbuConfig,
    CopyPasteConfig,
    FlipConfig,
    MosaicConfig,
    RicapConfig,
    RotateConfig,
    run_augment,
)
from datatools.core.dataset import Dataset
from datatools.core.masks import annotation_to_rle, rasterize_multilabel, rle_to_mask

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
IOU_MIN = 0.98
Mask = npt.NDArray[np.bool_]


@pytest.fixture(scope="module")
def ds() -> Dataset:
    full = Dataset.load(EXAMPLE / "_annotations.coco.json", EXAMPLE)
    keep = [img["id"] for img in full.images if full.annotations_of(img["id"])][:10]
    return full.subset(keep)


# ---- the independent reference ---------------------------------------------------------------------------
def render(ann: dict[str, Any], h: int, w: int) -> Mask:
    """The one rasteriser, on any annotation (source or output)."""
    return rle_to_mask(annotation_to_rle(ann["segmentation"], h, w))


_SOURCE_MASKS: dict[tuple[int, Any], dict[Any, Mask]] = {}


def source_masks(ds: Dataset, image_id: Any) -> dict[Any, Mask]:
    key = (id(ds), image_id)
    if key not in _SOURCE_MASKS:
        img = next(i for i in ds.images if i["id"] == image_id)
        _SOURCE_MASKS[key] = {a["id"]: render(a, img["height"], img["width"]) for a in ds.annotations_of(image_id)}
    return _SOURCE_MASKS[key]


def outputs(out: Path) -> list[tuple[dict[str, Any], list[tuple[dict[str, Any], Mask]]]]:
    coco = json.loads((out / "annotations.json").read_text())
    by_img: dict[Any, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_img.setdefault(a["image_id"], []).append(a)
    result = []
    for img in coco["images"]:
        anns = by_img.get(img["id"], [])
        result.append((img, [(a, render(a, img["height"], img["width"])) for a in anns]))
        assert cv2.imread(str(out / "images" / img["file_name"])).shape[:2] == (img["height"], img["width"])
    return result


def bilinear_warp(mask: Mask, m: npt.NDArray[np.float64], out_hw: tuple[int, int]) -> Mask:
    """Inverse-map every output pixel centre through ``m`` (pixel-centre coordinates), interpolate the source mask
    bilinearly (zero outside) and keep values >= 0.5. Only pixels near the mapped bounding box can be set, so
    only those are computed."""
    out = np.zeros(out_hw, dtype=bool)
    ys_, xs_ = np.nonzero(mask)
    if not len(ys_):
        return out
    corners = np.array([[xs_.min() - 1, ys_.min() - 1, 1], [xs_.max() + 1, ys_.min() - 1, 1],
                        [xs_.min() - 1, ys_.max() + 1, 1], [xs_.max() + 1, ys_.max() + 1, 1]]) @ m.T
    bx0, by0 = (max(0, int(v) - 1) for v in np.floor(corners.min(axis=0)))
    bx1 = min(out_hw[1], int(np.ceil(corners[:, 0].max())) + 2)
    by1 = min(out_hw[0], int(np.ceil(corners[:, 1].max())) + 2)
    if bx1 <= bx0 or by1 <= by0:
        return out
    inv = np.linalg.inv(np.vstack([m, [0, 0, 1]]))[:2]
    ys, xs = np.mgrid[by0:by1, bx0:bx1].astype(np.float64)
    sx = inv[0, 0] * xs + inv[0, 1] * ys + inv[0, 2]
    sy = inv[1, 0] * xs + inv[1, 1] * ys + inv[1, 2]
    src = np.pad(mask.astype(np.float64), 1)
    x0, y0 = np.floor(sx), np.floor(sy)
    fx, fy = sx - x0, sy - y0
    xi, yi = x0.astype(int) + 1, y0.astype(int) + 1
    ok = (xi >= 0) & (yi >= 0) & (xi + 1 < src.shape[1]) & (yi + 1 < src.shape[0])
    xi, yi = np.where(ok, xi, 0), np.where(ok, yi, 0)
    val = (src[yi, xi] * (1 - fx) * (1 - fy) + src[yi, xi + 1] * fx * (1 - fy)
           + src[yi + 1, xi] * (1 - fx) * fy + src[yi + 1, xi + 1] * fx * fy)
    out[by0:by1, bx0:bx1] = (val >= 0.5) & ok
    return out


def iou(a: Mask, b: Mask) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def rotation(size_hw: tuple[int, int], angle: float, expand: bool) -> tuple[npt.NDArray[np.float64], tuple[int, int]]:
    """Counter-clockwise turn about the image centre (pixel-centre coordinates), written out by hand."""
    h, w = size_hw
    a = math.radians(angle)
    lin = np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    out_h, out_w = h, w
    if expand:
        out_w = math.ceil(round(h * abs(math.sin(a)) + w * abs(math.cos(a)), 6))
        out_h = math.ceil(round(h * abs(math.cos(a)) + w * abs(math.sin(a)), 6))
    c_in, c_out = np.array([(w - 1) / 2, (h - 1) / 2]), np.array([(out_w - 1) / 2, (out_h - 1) / 2])
    return np.hstack([lin, (c_out - lin @ c_in)[:, None]]), (out_h, out_w)


def _by_source(anns: list[tuple[dict[str, Any], Mask]]) -> dict[tuple[Any, Any], Mask]:
    out = {}
    for a, m in anns:
        key = (a["datatools"]["source_image_id"], a["datatools"]["source_annotation_id"])
        assert key not in out
        out[key] = m
    return out


# ---- exact ops ---------------------------------------------------------------------------------------------
def _check_exact_single(ds: Dataset, out: Path, transform: Any) -> int:
    cm = ds.class_map()
    n = 0
    for img, anns in outputs(out):
        (src_id,) = img["datatools"]["sources"]
        src = source_masks(ds, src_id)
        got = _by_source(anns)
        assert set(got) == {(src_id, k) for k in src}, "no object may be lost or invented"
        for (_, ann_id), mask in got.items():
            assert np.array_equal(mask, transform(src[ann_id], img["datatools"]["params"])), (img["file_name"], ann_id)
            n += 1
        src_img = next(i for i in ds.images if i["id"] == src_id)
        before = rasterize_multilabel(ds.annotations_of(src_id), src_img["height"], src_img["width"], cm)
        after = rasterize_multilabel([a for a, _ in anns], img["height"], img["width"], cm)
        assert np.array_equal(after, np.stack([transform(p, img["datatools"]["params"]) for p in before]))
    return n


def _flip(mask: Mask, params: dict[str, Any]) -> Mask:
    d = params["direction"]
    return mask[::-1 if "v" in d else 1, ::-1 if "h" in d else 1]


def test_flip_is_exact(ds: Dataset, tmp_path: Path) -> None:
    run_augment(ds, tmp_path / "o", "flip", FlipConfig(directions=("h", "v", "hv")), workers=2, progress=False)
    assert _check_exact_single(ds, tmp_path / "o", _flip) == 3 * len(ds.annotations)


def test_rotate_90_is_exact(ds: Dataset, tmp_path: Path) -> None:
    run_augment(ds, tmp_path / "o", "rotate", RotateConfig(angles=(90, 180, 270, -90)), workers=2, progress=False)
    n = _check_exact_single(ds, tmp_path / "o", lambda m, p: np.rot90(m, round(p["angle"] / 90) % 4))
    assert n == 4 * len(ds.annotations)


def test_albu_flip_transpose_is_exact(ds: Dataset, tmp_path: Path) -> None:
    A.save(A.Compose([A.HorizontalFlip(p=1.0), A.Transpose(p=1.0)]), tmp_path / "p.yaml", data_format="yaml")
    run_augment(ds, tmp_path / "o", "albu", AlbuConfig.from_file(tmp_path / "p.yaml"), workers=2, progress=False)
    assert _check_exact_single(ds, tmp_path / "o", lambda m, p: m[:, ::-1].T) == len(ds.annotations)


@functools.cache
def _centre_map(src: int, dst: int) -> list[int]:
    """The source pixel holding each destination pixel centre, in exact rational arithmetic."""
    return [min(src - 1, math.floor(Fraction(2 * i + 1, 2) * Fraction(src, dst))) for i in range(dst)]


def _check_tiles(ds: Dataset, out: Path, min_area: int) -> int:
    n = 0
    for img, anns in outputs(out):
        got = _by_source(anns)
        params = img["datatools"]["params"]
        expected: dict[tuple[Any, Any], Mask] = {}
        for tile in params["tiles"]:
            src_id = img["datatools"]["sources"][tile["source"]]
            y0, x0, y1, x1 = tile["cell_yxyx"]
            oy, ox = tile["offset_yx"]
            rh, rw = tile["resize_hw"]
            for ann_id, mask in source_masks(ds, src_id).items():
                if mask.shape != (rh, rw):
                    mask = mask[np.ix_(_centre_map(mask.shape[0], rh), _centre_map(mask.shape[1], rw))]
                canvas = np.zeros((img["height"], img["width"]), dtype=bool)
                canvas[y0:y1, x0:x1] = mask[oy:oy + y1 - y0, ox:ox + x1 - x0]
                if canvas.sum() >= min_area:
                    expected[(src_id, ann_id)] = canvas
        assert set(got) == set(expected), "objects kept must be exactly those with min_area pixels after the cut"
        for key, mask in got.items():
            assert np.array_equal(mask, expected[key]), (img["file_name"], key)
            n += 1
    return n


@pytest.mark.parametrize("config", [MosaicConfig(), MosaicConfig(grid_hw=(3, 3), size_hw=(500, 700), min_area=1)],
                         ids=["2x2", "3x3-resized"])
def test_mosaic_cuts_are_exact(ds: Dataset, tmp_path: Path, config: MosaicConfig) -> None:
    run_augment(ds, tmp_path / "o", "mosaic", config, count=12, seed=3, workers=2, progress=False)
    assert _check_tiles(ds, tmp_path / "o", config.min_area) > 12


def test_ricap_cuts_are_exact(ds: Dataset, tmp_path: Path) -> None:
    run_augment(ds, tmp_path / "o", "ricap", RicapConfig(size_hw=(600, 600)), count=12, seed=4, workers=2,
                progress=False)
    assert _check_tiles(ds, tmp_path / "o", RicapConfig().min_area) > 12


# ---- interpolating ops: IoU -----------------------------------------------------------------------------------
@pytest.mark.parametrize("expand", [False, True])
def test_rotate_any_angle_iou(ds: Dataset, tmp_path: Path, expand: bool) -> None:
    config = RotateConfig(angles=(-15.0, 15.0, 37.5), expand=expand)
    run_augment(ds, tmp_path / "o", "rotate", config, workers=2, progress=False)
    worst, worst_poly, n, differ = 1.0, 1.0, 0, 0
    for img, anns in outputs(tmp_path / "o"):
        (src_id,) = img["datatools"]["sources"]
        src_img = next(i for i in ds.images if i["id"] == src_id)
        m, out_hw = rotation((src_img["height"], src_img["width"]), img["datatools"]["params"]["angle"], expand)
        assert (img["height"], img["width"]) == out_hw
        got = _by_source(anns)
        for ann_id, mask in source_masks(ds, src_id).items():
            ref = bilinear_warp(mask, m, out_hw)
            if (src_id, ann_id) not in got:
                assert ref.sum() < 2 * config.min_area, "only objects left tiny may be dropped"
                continue
            worst, n = min(worst, iou(got[(src_id, ann_id)], ref)), n + 1
            differ += int((got[(src_id, ann_id)] ^ ref).sum())
            if mask.sum() >= 2000:  # the coordinate convention, checked against the rotated polygon too
                ann = next(a for a in ds.annotations_of(src_id) if a["id"] == ann_id)
                poly = [((np.array(p).reshape(-1, 2) - 0.5) @ m[:, :2].T + m[:, 2] + 0.5).ravel().tolist()
                        for p in ann["segmentation"]]
                worst_poly = min(worst_poly, iou(got[(src_id, ann_id)], rle_to_mask(annotation_to_rle(poly, *out_hw))))
    print(f"rotate expand={expand}: {n} objects, worst IoU {worst:.5f} ({differ} pixels differ in all) against the "
          f"warped source mask; worst IoU {worst_poly:.4f} against the rotated polygon (objects >= 2000 px)")
    assert n > 50 and worst >= IOU_MIN and worst_poly >= 0.95


def _paste_reference(ds: Dataset, img: dict[str, Any], exact: bool
                     ) -> tuple[dict[tuple[Any, Any], Mask], dict[tuple[Any, Any], int], set[tuple[Any, Any]]]:
    """Expected visible mask of every object after the pastes (keyed by source image and annotation id), each
    object's area before anything covered it, and which objects were pasted."""
    params = img["datatools"]["params"]
    h, w = img["height"], img["width"]
    sources = img["datatools"]["sources"]
    layers = [((sources[0], k), m) for k, m in source_masks(ds, sources[0]).items()]
    for p in params["pastes"]:
        donor_id = sources[p["donor"]]
        mask = source_masks(ds, donor_id)[p["annotation_id"]]
        m = np.array(p["matrix"])
        a = math.radians(p["angle"])
        lin = p["scale"] * np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
        lin = lin @ np.diag([-1.0 if p["flip"] else 1.0, 1.0])
        assert np.allclose(m[:, :2], lin), "the map must be the flip, scale and rotation the params name"
        if exact:  # an integer shift (and mirror): move the pixels one by one
            ys, xs = np.nonzero(mask)
            ref = np.zeros((h, w), dtype=bool)
            ref[np.rint(m[1, 0] * xs + m[1, 1] * ys + m[1, 2]).astype(int),
                np.rint(m[0, 0] * xs + m[0, 1] * ys + m[0, 2]).astype(int)] = True
        else:
            ref = bilinear_warp(mask, m, (h, w))
        y0, x0, y1, x1 = p["box_yxyx"]
        inside = np.zeros((h, w), dtype=bool)
        inside[y0:y1, x0:x1] = True
        assert not (ref & ~inside).any(), "a pasted object lies inside its recorded box"
        layers.append(((donor_id, p["annotation_id"]), ref))
    n_target = len(layers) - len(params["pastes"])
    visible = {key: m.copy() for key, m in layers}
    before = {key: int(m.sum()) for key, m in layers}
    for k in range(n_target, len(layers)):  # each paste covers everything under it
        for key, _ in layers[:k]:
            visible[key] &= ~layers[k][1]
    pasted = {key for key, _ in layers[n_target:]}
    return visible, before, pasted


@pytest.mark.parametrize("scaled", [False, True], ids=["unscaled-exact", "scaled-rotated-iou"])
def test_copy_paste_labels(ds: Dataset, tmp_path: Path, scaled: bool) -> None:
    config = CopyPasteConfig(classes=("Blood bag", "Mask", "syringe"), objects_range=(2, 4), flip_prob=0.5,
                             scale_range=(0.6, 1.5) if scaled else (1.0, 1.0),
                             angle_range=(-45.0, 45.0) if scaled else (0.0, 0.0))
    run_augment(ds, tmp_path / "o", "copy-paste", config, count=16, seed=5, workers=2, progress=False)
    worst, n_pasted, n_checked, differ = 1.0, 0, 0, 0
    for img, anns in outputs(tmp_path / "o"):
        got = _by_source(anns)
        visible, before, pasted = _paste_reference(ds, img, exact=not scaled)
        n_pasted += len(img["datatools"]["params"]["pastes"])
        for key, ref in visible.items():
            ratio = ref.sum() / max(before[key], 1)
            # objects that lost pixels, and pasted ones, are dropped under min_visible or min_area; others stay
            kept = (key not in pasted and ratio == 1) or (ratio >= config.min_visible and ref.sum() >= config.min_area)
            if scaled and (abs(ratio - config.min_visible) < 0.05 or abs(int(ref.sum()) - config.min_area) < 8):
                continue  # resampling may tip an object sitting on a threshold either way
            assert (key in got) == kept, (img["file_name"], key, ratio)
            if not kept:
                continue
            n_checked += 1
            if scaled:
                worst, differ = min(worst, iou(got[key], ref)), differ + int((got[key] ^ ref).sum())
            else:
                assert np.array_equal(got[key], ref), (img["file_name"], key)
        assert set(got) <= set(visible)
    print(f"copy-paste scaled={scaled}: {n_pasted} pastes, {n_checked} objects checked, worst IoU {worst:.5f} "
          f"({differ} pixels differ in all)")
    assert n_pasted >= 16 and n_checked > 30
    assert worst >= IOU_MIN

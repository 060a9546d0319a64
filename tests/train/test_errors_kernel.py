"""The error breakdown on hand-made masks where every number is known, and Boundary IoU against a per-pixel
brute force (no torch needed)."""

from __future__ import annotations

import numpy as np
import pytest

from datatools_train.error_report import render_error_report
from datatools_train.error_tables import ErrorAccumulator, size_bucket
from datatools_train.errors import COUNTS, boundary_width, image_errors, inner_band, object_hits

C = {name: i for i, name in enumerate(COUNTS)}


def _row(res, c: int) -> dict[str, int]:  # noqa: ANN001
    return {name: int(res.counts[c, i]) for name, i in C.items()}


def _square(mask: np.ndarray, value: int, top: int, left: int, side: int) -> np.ndarray:
    mask[top:top + side, left:left + side] = value
    return mask


def test_band_width_scales_with_the_image_diagonal() -> None:
    assert boundary_width(512, 512, 3) == 3
    assert boundary_width(640, 640, 3) == 4  # 3.75
    assert boundary_width(1024, 1024, 3) == 6
    assert boundary_width(64, 64, 3) == 1  # never below one pixel


def test_shifted_square_multiclass() -> None:
    # a 20x20 square predicted 2 px to the right; 64x64 image: d = 1
    truth = _square(np.zeros((64, 64), np.uint8), 1, 10, 10, 20)
    pred = _square(np.zeros((64, 64), np.uint8), 1, 10, 12, 20)
    r = _row(image_errors(truth, pred, 2), 0)
    # missed: columns 10 and 11 (40 px); in the 1-px band: column 10 (20) + column 11's top and bottom pixel (2)
    assert (r["under_boundary"], r["under_interior"]) == (22, 18)
    # taken from the background: columns 30 (next to the edge) and 31 (2 px away)
    assert (r["over_boundary"], r["over_interior"]) == (20, 20)
    assert (r["confusion_boundary"], r["confusion_interior"]) == (0, 0)
    assert (r["truth_px"], r["pred_px"], r["tp_px"]) == (400, 400, 360)
    # boundary IoU: each band is 20x20 - 18x18 = 76 px; they share columns 12..29 of the top and bottom rows (36)
    assert (r["biou_inter"], r["biou_union"]) == (36, 76 + 76 - 36)
    assert _row(image_errors(truth, pred, 2), 1) == dict.fromkeys(COUNTS, 0)


def test_swapped_classes_are_confusion_with_which() -> None:
    truth = _square(_square(np.zeros((64, 64), np.uint8), 1, 4, 4, 10), 2, 30, 30, 12)
    pred = _square(_square(np.zeros((64, 64), np.uint8), 2, 4, 4, 10), 1, 30, 30, 12)
    res = image_errors(truth, pred, 2)
    a, b = _row(res, 0), _row(res, 1)
    # every pixel of each square is confused; bands of a 10x10 (100 - 64) and a 12x12 (144 - 100)
    assert (a["confusion_boundary"], a["confusion_interior"]) == (36, 64)
    assert (b["confusion_boundary"], b["confusion_interior"]) == (44, 100)
    assert a["under_boundary"] + a["under_interior"] + a["over_boundary"] + a["over_interior"] == 0
    assert res.confused_as.tolist() == [[0, 0, 100], [0, 144, 0]]  # [truth class, predicted value]
    assert a["tp_px"] == b["tp_px"] == 0 and a["biou_inter"] == 0 and a["biou_union"] == 36 + 44


def test_missing_object_and_object_recall() -> None:
    truth = _square(_square(np.zeros((64, 64), np.uint8), 1, 4, 4, 10), 2, 30, 30, 10)
    pred = _square(np.zeros((64, 64), np.uint8), 1, 4, 4, 10)  # the class-2 object is missed
    r = _row(image_errors(truth, pred, 2), 1)
    assert (r["under_boundary"], r["under_interior"], r["over_boundary"], r["over_interior"]) == (36, 64, 0, 0)
    anns = [{"category_id": 7, "segmentation": [[4, 4, 14, 4, 14, 14, 4, 14]], "iscrowd": 0},
            {"category_id": 9, "segmentation": [[30, 30, 40, 30, 40, 40, 30, 40]], "iscrowd": 0}]
    hits = object_hits(anns, {7: 1, 9: 2}, truth, pred)
    assert [(h.row, h.hit) for h in hits] == [(0, 1.0), (1, 0.0)]
    acc = ErrorAccumulator(["a", "b"], multilabel=False, worst=1)
    acc.add(1, "x.png", None, truth, pred, anns, {7: 1, 9: 2})  # type: ignore[arg-type]
    s = acc.summary().set_index("class")
    assert s.loc["a", "recall_small"] == 1.0 and s.loc["b", "recall_small"] == 0.0
    assert s.loc["b", "under"] == 1.0 and s.loc["b", "boundary"] == 0.36 and s.loc["a", "error_px"] == 0
    assert list(acc.gallery()) == ["b"] and acc.gallery()["b"][0].error_px == 100


def test_report_of_a_class_confused_with_none_shows_a_dash() -> None:
    truth = _square(_square(np.zeros((64, 64), np.uint8), 1, 4, 4, 10), 2, 30, 30, 10)
    pred = _square(np.zeros((64, 64), np.uint8), 2, 4, 4, 10)  # class 1 confused as 2; class 2 missed
    acc = ErrorAccumulator(["a", "b"], multilabel=False, worst=0)
    acc.add(1, "x.png", None, truth, pred, [], {})  # type: ignore[arg-type]
    summary = acc.summary()
    assert summary["confused_most_as"].tolist()[0] == "b"
    html = render_error_report("miou 0.5", summary, {}, multilabel=False, boundary_px=3, title="t")
    assert "b (100 px)" in html and "nan (" not in html  # b is confused with nothing: a dash, not "nan (0 px)"


def test_thin_boundary_error_is_all_boundary() -> None:
    truth = _square(np.zeros((64, 64), np.uint8), 1, 10, 10, 20)
    pred = _square(np.zeros((64, 64), np.uint8), 1, 11, 11, 18)  # one pixel short all round
    r = _row(image_errors(truth, pred, 1), 0)
    assert (r["under_boundary"], r["under_interior"]) == (76, 0)
    # IoU 324 / 400 = 0.81, but the bands (76 and 18x18 - 16x16 = 68 px) do not touch: Boundary IoU 0
    assert (r["tp_px"], r["biou_inter"], r["biou_union"]) == (324, 0, 76 + 68)


def test_ignore_pixels_count_nowhere() -> None:
    truth = _square(np.zeros((64, 64), np.uint8), 1, 10, 10, 20)
    truth[40:50, 40:50] = 255
    pred = _square(np.zeros((64, 64), np.uint8), 1, 10, 10, 20)
    pred[40:50, 40:50] = 1  # predicted inside the ignore region: no over-prediction
    assert image_errors(truth, pred, 1).error_px().tolist() == [0]


def test_multilabel_planes_fn_fp() -> None:
    truth = np.zeros((2, 64, 64), np.uint8)
    _square(truth[0], 1, 10, 10, 20)
    _square(truth[1], 1, 14, 14, 10)  # overlaps plane 0
    pred = np.zeros((2, 64, 64), bool)
    pred[0, 10:30, 12:32] = True  # plane 0 shifted
    res = image_errors(truth, pred, 2)
    a, b = _row(res, 0), _row(res, 1)
    assert (a["under_boundary"], a["under_interior"], a["over_boundary"], a["over_interior"]) == (22, 18, 20, 20)
    assert (b["under_boundary"], b["under_interior"], b["over_boundary"]) == (36, 64, 0)
    assert a["confusion_boundary"] + a["confusion_interior"] == 0 and res.confused_as.sum() == 0
    truth[1, 0:5, 0:5] = 255  # ignored in plane 1 only
    pred[1, 0:5, 0:5] = True
    assert image_errors(truth, pred, 2).counts[1, C["over_boundary"]:C["over_interior"] + 1].sum() == 0


def _brute_band(mask: np.ndarray, d: int) -> np.ndarray:
    """Pixel by pixel: in the mask, and some pixel within chessboard distance d is not (outside the image is not)."""
    h, w = mask.shape
    out = np.zeros_like(mask)
    for y in range(h):
        for x in range(w):
            if not mask[y, x]:
                continue
            for yy in range(y - d, y + d + 1):
                for xx in range(x - d, x + d + 1):
                    if not (0 <= yy < h and 0 <= xx < w) or not mask[yy, xx]:
                        out[y, x] = True
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_boundary_iou_against_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    h, w = 40, 48
    truth = np.zeros((h, w), np.uint8)
    pred = np.zeros((h, w), np.uint8)
    for mask in (truth, pred):
        for _ in range(4):  # random rectangles and noise blobs, some touching the border
            y, x = rng.integers(-3, h - 4), rng.integers(-3, w - 4)
            mask[max(0, y):y + rng.integers(3, 18), max(0, x):x + rng.integers(3, 18)] = rng.integers(1, 3)
        mask[rng.random((h, w)) < 0.03] = 1
    px = 48  # d = round(48 * diag(40, 48) / diag(512, 512)) = 4
    d = boundary_width(h, w, px)
    assert d == 4
    res = image_errors(truth, pred, 2, px)
    for c in (1, 2):
        g, p = _brute_band(truth == c, d), _brute_band(pred == c, d)
        assert np.array_equal(inner_band(truth == c, d), g)
        assert (res.counts[c - 1, C["biou_inter"]], res.counts[c - 1, C["biou_union"]]) == ((g & p).sum(),
                                                                                           (g | p).sum())
        # the band split of the errors, pixel by pixel
        under = (truth == c) & (pred == 0)
        assert res.counts[c - 1, C["under_boundary"]] == (under & g).sum()
        outer = _brute_band(truth != c, d) & (truth != c)  # background pixels within d of class c
        over = (truth == 0) & (pred == c)
        assert res.counts[c - 1, C["over_boundary"]] == (over & outer & _near(truth == c, d)).sum()


def _near(mask: np.ndarray, d: int) -> np.ndarray:
    h, w = mask.shape
    ys, xs = np.nonzero(mask)
    out = np.zeros_like(mask)
    for y, x in zip(ys, xs, strict=True):
        out[max(0, y - d):y + d + 1, max(0, x - d):x + d + 1] = True
    return out


def test_breakdown_adds_up_to_the_confusion_matrix() -> None:
    rng = np.random.default_rng(3)
    k = 4
    truth = rng.integers(0, k + 1, (50, 60)).astype(np.uint8)
    truth[rng.random(truth.shape) < 0.05] = 255
    pred = rng.integers(0, k + 1, (50, 60)).astype(np.uint8)
    keep = truth != 255
    matrix = np.bincount(truth[keep].astype(int) * (k + 1) + pred[keep], minlength=(k + 1) ** 2).reshape(k + 1, -1)
    res = image_errors(truth, pred, k)
    for c in range(1, k + 1):
        assert res.error_px()[c - 1] == matrix[c].sum() - matrix[c, c] + matrix[0, c]
        assert res.confused_as[c - 1].tolist() == [*(v if j != c else 0 for j, v in enumerate(matrix[c]))]
    assert res.error_px().sum() == matrix.sum() - np.trace(matrix)


def test_size_buckets_are_cocos() -> None:
    assert [size_bucket(a) for a in (1, 1023, 1024, 9215, 9216)] == ["small", "small", "medium", "medium", "large"]

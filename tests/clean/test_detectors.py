"""Each clean detector against a hand-made case whose answer is known."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from clean_builders import annotation, smooth_image, square, write_dataset, write_image

from datatools.clean import run_clean
from datatools.clean.rules import AnnotationRules
from datatools.core.classes import ClassMap
from datatools.core.masks import rasterize_multilabel


def _kinds(result, kind: str) -> list:  # type: ignore[no-untyped-def]
    return [f for f in result.findings if f.kind == kind]


def test_exact_near_duplicates_clustered_with_keeper_and_leaks_against_other(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    base, other, lone = smooth_image(rng), smooth_image(rng), smooth_image(rng)
    images = [("a.png", base), ("b.png", base.copy()), ("c.jpg", base[:, ::-1].copy()), ("d.png", other),
              ("e.png", lone)]
    anns = [annotation(1, 1, 1, square(4, 4, 10)), annotation(2, 1, 1, square(30, 30, 10)),
            annotation(3, 2, 1, square(4, 4, 10))]
    ann, root, _ = write_dataset(tmp_path / "ds", images, anns)
    # c.jpg is a flipped JPEG re-encode: not the same pixels, a near copy
    assert not np.array_equal(cv2.imread(str(root / "c.jpg"))[:, ::-1], cv2.imread(str(root / "a.png")))
    test_dir = tmp_path / "test"
    write_image(test_dir / "x.png", base)  # exact copy of a (and b)
    write_image(test_dir / "y.jpg", np.ascontiguousarray(np.rot90(other)), quality=80)  # rotated re-encode of d
    result = run_clean(ann, root, out=tmp_path / "out", checks="duplicates", against=[test_dir], workers=1,
                       progress=False)
    dup = {f.image_id: f for f in result.findings if f.kind.startswith("duplicate")}
    assert set(dup) == {2, 3}  # a (the keeper: most annotations), d and e are not duplicates of anything
    assert dup[2].kind == "duplicate-exact" and dup[2].related == "image 1"
    assert dup[3].kind == "duplicate-near" and dup[3].related == "image 1"
    assert dup[2].cluster == dup[3].cluster == 0
    leaks = {f.image_id: (f.kind, Path(f.related).name) for f in result.findings if f.kind.startswith("leak")}
    assert leaks == {1: ("leak-exact", "x.png"), 2: ("leak-exact", "x.png"), 3: ("leak-near", "x.png"),
                     4: ("leak-near", "y.jpg")}
    table = pd.read_parquet(tmp_path / "out" / "findings.parquet")
    assert sorted(table.loc[table["kind"] == "duplicate-exact", "image_id"]) == [2]


def test_outlier_images_by_median_mad_and_near_constant(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    images = [(f"{k:02d}.png", smooth_image(rng)) for k in range(30)]
    images[7] = ("07.png", (smooth_image(rng) * 0.2).astype(np.uint8))  # very dark
    images[19] = ("19.png", np.full((64, 64, 3), 200, np.uint8))  # one colour
    ann, root, _ = write_dataset(tmp_path / "ds", images, [])
    result = run_clean(ann, root, out=tmp_path / "out", checks="outliers", workers=2, progress=False)
    flagged = {f.image_id for f in result.findings if f.check.value == "outliers"}
    assert flagged == {8, 20}
    assert [f.image_id for f in _kinds(result, "near-constant-image")] == [20]
    dark = [f for f in _kinds(result, "outlier-image") if f.image_id == 8]
    assert dark and "brightness" in dark[0].reason
    # the table holds the robust scores: the dark image's brightness z is the most negative
    table = pd.read_parquet(tmp_path / "out" / "images.parquet")
    assert int(table.loc[table["z_brightness"].idxmin(), "image_id"]) == 8
    b = table["brightness"].to_numpy()
    mad = np.median(np.abs(b - np.median(b)))
    assert np.allclose(table["z_brightness"], 0.6745 * (b - np.median(b)) / mad)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_annotation_problems_hand_made(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    images = [(f"{k}.png", smooth_image(rng, (100, 100))) for k in range(10)]
    anns = [
        annotation(1, 1, 1, square(10, 10, 30)),
        annotation(2, 1, 1, [[10, 10, 40, 10, 40, 40, 10, 40.5]]),  # the same object again: IoU >= 0.9
        annotation(3, 1, 2, square(60, 60, 25)),
        annotation(4, 1, 3, square(60.5, 60, 25)),  # another class on the same object
        annotation(5, 2, 1, [[5, 5, 7, 5, 7, 7]]),  # tiny
        annotation(6, 2, 1, [[10, 50, 90, 50, 90, 51, 10, 51]]),  # a sliver one pixel thick
        annotation(7, 2, 1, [[10, 10, 90, 90, 90, 89, 20, 12, 12, 20]]),  # thin diagonal: far from its box
        {"id": 8, "image_id": 2, "category_id": 1, "segmentation": [[1, 1, 5, 5]], "iscrowd": 0},  # 2 points
    ]
    # class b: nine objects of about 400 px and one of 8100 px (a size outlier for its class)
    anns += [annotation(20 + k, 3 + k % 8, 2, square(50, 5 + (k // 8) * 30, 20 + k % 3)) for k in range(9)]
    anns.append(annotation(40, 10, 2, square(5, 5, 90)))
    ann, root, coco = write_dataset(tmp_path / "ds", images, anns)
    result = run_clean(ann, root, out=tmp_path / "out", checks="annotations", workers=1, progress=False)

    def ids(kind: str) -> dict[tuple[int, ...], str]:
        return {tuple(f.annotation_ids): f.code for f in _kinds(result, kind)}

    assert ids("double-annotation") == {(2,): "same-class"}
    assert ids("conflicting-label") == {(3, 4): "two-classes"}
    assert ids("degenerate") == {(5,): "tiny", (6,): "sliver", (7,): "low-fill"}
    assert ids("invalid-annotation") == {(8,): "too-few-points"}
    assert ids("size-outlier") == {(40,): "larger"}
    # IoUs in the findings are the rasterised masks' (brute force over the one rasteriser's planes)
    cm = ClassMap.from_categories(coco["categories"])
    planes = {a["id"]: rasterize_multilabel([a], 100, 100, cm).any(axis=0) for a in anns[:4]}
    double = _kinds(result, "double-annotation")[0]
    conflict = _kinds(result, "conflicting-label")[0]
    assert abs(double.score - _iou(planes[1], planes[2])) < 1e-9 and double.score >= 0.9
    assert abs(conflict.score - _iou(planes[3], planes[4])) < 1e-9 and conflict.score >= 0.9
    # with a threshold above both IoUs nothing is the same object
    strict = run_clean(ann, root, out=tmp_path / "out2", checks="annotations", workers=1, progress=False,
                       rules=AnnotationRules(iou=min(1.0, max(double.score, conflict.score) + 1e-6)))
    assert not {f.kind for f in strict.findings} & {"double-annotation", "conflicting-label"}


def test_sharpness_is_the_variance_of_the_laplacian() -> None:
    from datatools.eda.stats import sharpness

    gray = np.random.default_rng(0).integers(0, 256, (40, 30), dtype=np.uint8)
    p = np.pad(gray.astype(np.int64), 1, mode="reflect")  # OpenCV's default border (reflect 101)
    lap = p[:-2, 1:-1] + p[2:, 1:-1] + p[1:-1, :-2] + p[1:-1, 2:] - 4 * p[1:-1, 1:-1]
    assert abs(sharpness(gray) - lap.var()) < 1e-6 * lap.var()
    assert sharpness(np.full((8, 8), 7, np.uint8)) == 0.0

"""The per-image pure function against brute force: painted masks, decoded annotation masks, numpy statistics."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from datatools.core.classes import ClassMap
from datatools.core.masks import OverlapPolicy, annotation_to_rle, mask_to_rle, rasterize_semantic
from datatools.eda import overlaps
from datatools.eda.colors import class_colors
from datatools.eda.stats import ImageJob, StatsConfig, compared_policies, image_stats

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
POLICIES = ["smaller-on-top", "order", "max-id", "conflict-ignore", "class-priority:syringe,ampoule"]


def _jobs(coco: dict[str, Any]) -> list[ImageJob]:
    by_image: dict[Any, list[dict[str, Any]]] = {}
    for a in coco["annotations"]:
        by_image.setdefault(a["image_id"], []).append(a)
    return [ImageJob(i, img["id"], img["file_name"], img["height"], img["width"], by_image.get(img["id"], []),
                     (img.get("datatools") or {}).get("ignore", []))
            for i, img in enumerate(coco["images"])]


def _hist(mask: np.ndarray, k: int) -> list[int]:
    counts = np.bincount(mask.ravel(), minlength=256)
    return [*counts[: k + 1].tolist(), int(counts[255])]


def _brute_overlaps(job: ImageJob, cm: ClassMap) -> tuple[int, int, dict[tuple[int, int], int]]:
    """Decode every annotation and count claims pixel by pixel."""
    h, w = job.height, job.width
    planes = [mask_utils.decode(annotation_to_rle(a["segmentation"], h, w)).astype(bool) for a in job.annotations]
    values = [cm.value_of(a["category_id"]) for a in job.annotations]
    if not planes:
        return 0, 0, {}
    claims = np.sum(planes, axis=0)
    per_class = {v: np.sum([p for p, pv in zip(planes, values, strict=True) if pv == v], axis=0) for v in set(values)}
    n_classes = np.sum([c > 0 for c in per_class.values()], axis=0)
    pairs = {}
    for a in sorted(per_class):
        for b in sorted(per_class):
            if a < b:
                px = int(((per_class[a] > 0) & (per_class[b] > 0)).sum())
            elif a == b:
                px = int((per_class[a] > 1).sum())
            else:
                continue
            if px:
                pairs[(a, b)] = px
    return int((claims > 1).sum()), int((n_classes > 1).sum()), pairs


@pytest.fixture(params=["covers", "painting"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test through the exact-cover path and through the painting fallback."""
    if request.param == "painting":
        monkeypatch.setattr(overlaps, "MAX_INTERSECTIONS", 0)
    return str(request.param)


@pytest.mark.parametrize("policy", POLICIES)
def test_counts_and_policy_changes_equal_the_painted_masks(policy: str, path: str) -> None:
    coco = json.loads((EXAMPLE / "_annotations.coco.json").read_text())
    cm = ClassMap.from_categories(coco["categories"])
    cfg = StatsConfig(str(EXAMPLE), cm, OverlapPolicy.parse(policy), read_pixels=False)
    conflicts = 0
    for job in _jobs(coco):
        stats = image_stats(job, cfg)
        mask = rasterize_semantic(job.annotations, job.height, job.width, cm, policy)
        assert stats.class_px.tolist() == _hist(mask, len(cm)), job.file_name
        for other in compared_policies(cfg.overlap):
            expected = int((rasterize_semantic(job.annotations, job.height, job.width, cm, other) != mask).sum())
            assert stats.changed_px[str(other)] == expected, (job.file_name, str(other))
        overlap, conflict, pairs = _brute_overlaps(job, cm)
        assert (stats.overlap_px, stats.conflict_px) == (overlap, conflict)
        assert {(a, b): px for a, b, px in stats.pair_px} == pairs
        assert stats.ann_px == [int(mask_utils.area(annotation_to_rle(a["segmentation"], job.height, job.width)))
                                for a in job.annotations]
        conflicts += bool(conflict)
    assert conflicts >= 2  # the example data really has pixels claimed by two classes


def _square(x: int, y: int, s: int) -> list[list[float]]:
    return [[x, y, x + s, y, x + s, y + s, x, y + s]]


def test_ignore_regions_rle_and_crowd_follow_the_rasteriser(path: str) -> None:
    h, w = 40, 60
    cm = ClassMap.from_categories([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    rle_mask = np.zeros((h, w), bool)
    rle_mask[5:15, 36:50] = True  # clear of the squares
    ignore = np.zeros((h, w), bool)
    ignore[0:8, 0:60] = True
    anns = [
        {"id": 1, "category_id": 1, "segmentation": _square(2, 2, 20), "iscrowd": 0},
        {"id": 2, "category_id": 1, "segmentation": _square(10, 10, 20), "iscrowd": 0},  # same class overlap
        {"id": 3, "category_id": 2, "segmentation": mask_to_rle(rle_mask), "iscrowd": 0},
        {"id": 4, "category_id": 2, "segmentation": {"size": [h, w], "counts": [h * 45, h * 10, h * 5]},
         "iscrowd": 1},
    ]
    for with_conflict in (False, True):
        job_anns = anns + ([{"id": 5, "category_id": 2, "segmentation": _square(0, 0, 12), "iscrowd": 0}]
                           if with_conflict else [])
        job = ImageJob(0, 1, "x.png", h, w, job_anns, [mask_to_rle(ignore)])
        for policy in POLICIES[:4]:
            stats = image_stats(job, StatsConfig(".", cm, OverlapPolicy.parse(policy), read_pixels=False))
            mask = rasterize_semantic(job_anns, h, w, cm, policy, ignore=job.ignore)
            assert stats.class_px.tolist() == _hist(mask, 2)
            if policy != "conflict-ignore":  # which also labels pixels claimed by two classes 255
                assert stats.class_px[-1] == ignore.sum()
            for other in compared_policies(OverlapPolicy.parse(policy)):
                ref = rasterize_semantic(job_anns, h, w, cm, other, ignore=job.ignore)
                assert stats.changed_px[str(other)] == int((ref != mask).sum())
            assert (stats.conflict_px > 0) == with_conflict


def test_pixel_statistics_equal_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    rgb = rng.integers(0, 256, size=(30, 50, 3), dtype=np.uint8)
    assert cv2.imwrite(str(tmp_path / "a.png"), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
    cm = ClassMap.from_categories([{"id": 1, "name": "a"}])
    job = ImageJob(0, 7, "a.png", 30, 50, [{"id": 1, "category_id": 1, "segmentation": _square(0, 0, 10)}],
                   thumbnail=True)
    stats = image_stats(job, StatsConfig(str(tmp_path), cm, OverlapPolicy(), palette=class_colors(1)))
    px = stats.pixels
    assert px is not None and stats.issue is None
    flat = rgb.reshape(-1, 3).astype(np.float64)
    np.testing.assert_allclose(px.mean, flat.mean(axis=0), rtol=1e-9)
    np.testing.assert_allclose(px.std, flat.std(axis=0), rtol=1e-9)
    np.testing.assert_allclose(px.channel_sum, flat.sum(axis=0), rtol=1e-9)
    np.testing.assert_allclose(px.channel_sumsq, (flat**2).sum(axis=0), rtol=1e-9)
    luma = flat @ [0.299, 0.587, 0.114]  # BT.601 weights, unrounded
    assert px.brightness == pytest.approx(luma.mean(), rel=1e-9) and px.contrast == pytest.approx(luma.std(), rel=1e-9)
    assert stats.thumbnail is not None and stats.thumbnail[:2] == b"\xff\xd8"


def test_heat_map_marks_where_the_object_sits() -> None:
    cm = ClassMap.from_categories([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    top_left = np.zeros((100, 200), bool)
    top_left[0:50, 0:100] = True
    anns = [{"id": 1, "category_id": 2, "segmentation": _square(100, 50, 100)},  # bottom-right quarter, polygon
            {"id": 2, "category_id": 1, "segmentation": mask_to_rle(top_left)}]  # top-left quarter, RLE
    stats = image_stats(ImageJob(0, 1, "x.png", 100, 200, anns), StatsConfig(".", cm, OverlapPolicy(),
                                                                             read_pixels=False, heat_size=8))
    assert stats.heat_values == (1, 2)
    expected_a = np.zeros((8, 8), np.uint8)
    expected_a[:4, :4] = 1
    np.testing.assert_array_equal(stats.heat[0], expected_a)
    assert stats.heat[1][4:, 4:].all() and not stats.heat[1][:4].any() and not stats.heat[1][:, :4].any()


@pytest.mark.parametrize("case", ["missing", "size", "broken"])
def test_bad_files_are_reported_not_raised(tmp_path: Path, case: str) -> None:
    cm = ClassMap.from_categories([{"id": 1, "name": "a"}])
    if case == "size":
        cv2.imwrite(str(tmp_path / "a.png"), np.zeros((10, 12, 3), np.uint8))
    elif case == "broken":
        (tmp_path / "a.png").write_bytes(b"not an image")
    job = ImageJob(3, 9, "a.png", 20, 20, [{"id": 1, "category_id": 1, "segmentation": _square(0, 0, 5)}])
    stats = image_stats(job, StatsConfig(str(tmp_path), cm, OverlapPolicy()))
    assert stats.pixels is None and stats.issue is not None
    code = {"missing": "missing-image", "size": "image-size-mismatch", "broken": "unreadable-image"}[case]
    assert stats.issue.code == code and stats.issue.index == 3 and stats.issue.record_id == 9
    assert stats.class_px[1] == 25  # the annotations are still counted


def test_the_pass_sums_the_same_in_any_chunks_and_workers() -> None:
    from datatools.eda.accumulate import run_pass

    coco = json.loads((EXAMPLE / "_annotations.coco.json").read_text())
    cm = ClassMap.from_categories(coco["categories"])
    jobs = _jobs(coco)[:20]
    cfg = StatsConfig(str(EXAMPLE), cm, OverlapPolicy())
    one = run_pass(jobs, cfg, workers=1, progress=False)
    batched = run_pass(jobs, cfg, workers=2, progress=False, chunk_size=6)
    np.testing.assert_array_equal(one.class_px, batched.class_px)
    np.testing.assert_array_equal(one.heat, batched.heat)
    np.testing.assert_array_equal(one.pair_px, batched.pair_px)
    assert one.channel_sum.tolist() == batched.channel_sum.tolist() and one.pixels == batched.pixels
    for name in ("overlap_rows", "ann_px", "ann_bbox_xywh", "pixel_table"):
        np.testing.assert_array_equal(getattr(one, name), getattr(batched, name))
    singles = [image_stats(job, cfg) for job in jobs]
    assert one.ann_px.tolist() == [px for s in singles for px in s.ann_px]
    assert one.pixel_table[:, 6].tolist() == [s.pixels.brightness for s in singles if s.pixels]
    heat = np.zeros_like(one.heat)
    for s in singles:
        for value, plane in zip(s.heat_values, s.heat, strict=True):
            heat[value] += plane
    np.testing.assert_array_equal(one.heat, heat)
    assert one.class_px.shape == (20, len(cm) + 2) and one.class_px.sum() == sum(j.height * j.width for j in jobs)


def test_random_tangles_of_overlaps_equal_the_painted_masks(path: str) -> None:
    rng = np.random.default_rng(7)
    cm = ClassMap.from_categories([{"id": i, "name": f"c{i}"} for i in (1, 2, 5)])
    h, w = 48, 64
    for trial in range(25):
        anns = []
        for k in range(int(rng.integers(2, 9))):
            cx, cy, r = rng.uniform(8, w - 8), rng.uniform(8, h - 8), rng.uniform(4, 16)
            angles = np.sort(rng.uniform(0, 2 * np.pi, int(rng.integers(3, 8))))
            poly = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], axis=1).round(1).ravel().tolist()
            anns.append({"id": k, "category_id": int(rng.choice([1, 2, 5])), "segmentation": [poly],
                         "iscrowd": 0})
        ignore = []
        if trial % 3 == 0:
            region = np.zeros((h, w), bool)
            region[: int(rng.integers(4, 20)), : int(rng.integers(4, 30))] = True
            ignore = [mask_to_rle(region)]
        job = ImageJob(0, 1, "x.png", h, w, anns, ignore)
        for policy in POLICIES[:4] + ["class-priority:c5,c1"]:
            stats = image_stats(job, StatsConfig(".", cm, OverlapPolicy.parse(policy), read_pixels=False))
            mask = rasterize_semantic(anns, h, w, cm, policy, ignore=ignore)
            assert stats.class_px.tolist() == _hist(mask, 3), (trial, policy)
            for other in compared_policies(OverlapPolicy.parse(policy)):
                ref = rasterize_semantic(anns, h, w, cm, other, ignore=ignore)
                assert stats.changed_px[str(other)] == int((ref != mask).sum()), (trial, policy, str(other))


def test_thumbnail_mask_is_painted_at_the_thumbnail_size() -> None:
    """The gallery's mask of an image wider than a thumbnail is painted at the thumbnail's size (scaled polygons,
    area-averaged RLE and ignore regions) and agrees with the full-size mask scaled down; a narrow image's is the
    full-size mask itself."""
    from datatools.eda.stats import thumbnail_mask

    cm = ClassMap.from_categories([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    blob = np.zeros((960, 1280), bool)
    blob[500:900, 100:700] = True
    hole = np.zeros((960, 1280), bool)
    hole[40:200, 1000:1200] = True
    anns = [{"id": 1, "category_id": 1, "segmentation": _square(200, 100, 500)},
            {"id": 2, "category_id": 2, "segmentation": _square(400, 300, 300)},  # overlaps a: smaller on top
            {"id": 3, "category_id": 2, "segmentation": mask_to_rle(blob)}]
    job = ImageJob(0, 1, "x.png", 960, 1280, anns, [mask_to_rle(hole)], thumbnail=True)
    cfg = StatsConfig(".", cm, OverlapPolicy(), read_pixels=False, thumb_width=320)
    (h, w), small = thumbnail_mask(job, cfg)
    assert (h, w) == (240, 320) and small.shape == (240, 320)
    full = rasterize_semantic(anns, 960, 1280, cm, OverlapPolicy(), ignore=job.ignore)
    reference = cv2.resize(full, (320, 240), interpolation=cv2.INTER_NEAREST)
    assert set(np.unique(small).tolist()) == {0, 1, 2, 255}
    assert (small == reference).mean() > 0.98  # only edge pixels may differ
    for value in (1, 2, 255):
        assert abs(int((small == value).sum()) - int((reference == value).sum())) <= 0.05 * (reference == value).sum()
    narrow = ImageJob(0, 1, "x.png", 200, 300, anns[:2], thumbnail=True)
    (nh, nw), same = thumbnail_mask(narrow, cfg)
    np.testing.assert_array_equal(same, rasterize_semantic(anns[:2], 200, 300, cm, OverlapPolicy()))
    assert (nh, nw) == (200, 300)

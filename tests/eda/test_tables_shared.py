"""classes.parquet (and the per-image and per-annotation numbers behind it) against a plain pycocotools loop,
on the full medical-waste train split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pycocotools.coco import COCO

from datatools.eda import run_eda


def _reference(coco: COCO) -> tuple[dict[int, int], dict[int, int], dict[int, int], int, dict[int, int],
                                      dict[int, list[int]]]:
    """Instances, images and painted pixels per category id (annToMask, sort by pixel area, paint), background
    pixels, pixel count of each annotation, and per-image painted pixels per category."""
    cat_ids = [c["id"] for c in coco.dataset["categories"]]
    value = {cid: v for v, cid in enumerate(cat_ids, start=1)}
    instances = {cid: len(coco.getAnnIds(catIds=[cid], iscrowd=None)) for cid in cat_ids}
    images = {cid: len(set(coco.catToImgs[cid])) for cid in cat_ids}
    pixels = dict.fromkeys(cat_ids, 0)
    per_image: dict[int, list[int]] = {}
    ann_px: dict[int, int] = {}
    background = 0
    for img_id, img in coco.imgs.items():
        anns = coco.loadAnns(coco.getAnnIds(imgIds=img_id, iscrowd=None))
        masks = [coco.annToMask(a) for a in anns]
        for a, m in zip(anns, masks, strict=True):
            ann_px[a["id"]] = int(m.sum())
        painted = np.zeros((img["height"], img["width"]), np.uint8)
        for i in sorted(range(len(anns)), key=lambda i: -int(masks[i].sum())):  # stable: ties keep file order
            painted[masks[i] > 0] = value[anns[i]["category_id"]]
        counts = np.bincount(painted.ravel(), minlength=len(cat_ids) + 1)
        background += int(counts[0])
        per_image[img_id] = counts.tolist()
        for cid in cat_ids:
            pixels[cid] += int(counts[value[cid]])
    return instances, images, pixels, background, ann_px, per_image


@pytest.mark.shared_data
def test_classes_parquet_equals_pycocotools(shared_data: Path, tmp_path: Path) -> None:
    split = shared_data / "medical_waste" / "train"
    ann_file = split / "_annotations.coco.json"
    run_eda(ann_file, split, out=tmp_path / "eda", workers=2, progress=False, gallery=1)
    classes = pd.read_parquet(tmp_path / "eda" / "classes.parquet")
    coco = COCO(str(ann_file))
    instances, images, pixels, background, ann_px, per_image = _reference(coco)
    total = background + sum(pixels.values())
    labelled = sum(pixels.values())
    n_images = len(coco.imgs)
    assert total == sum(img["height"] * img["width"] for img in coco.imgs.values())

    bg = classes[classes["name"] == "background"].iloc[0]
    assert bg["pixels"] == background
    assert bg["pixel_share"] == pytest.approx(background / total)
    rows = classes[classes["value"].between(1, 254)].set_index("category_id")
    assert sorted(rows.index) == sorted(instances)
    for cid in instances:
        row = rows.loc[cid]
        assert row["name"] == coco.cats[cid]["name"]
        assert row["instances"] == instances[cid]
        assert row["images"] == images[cid]
        assert row["image_share"] == pytest.approx(images[cid] / n_images)
        assert row["pixels"] == pixels[cid]
        assert row["pixel_share"] == pytest.approx(pixels[cid] / total)
        assert row["labelled_share"] == pytest.approx(pixels[cid] / labelled)
        assert row["instance_share"] == pytest.approx(instances[cid] / len(coco.anns))
        areas = [ann_px[a] for a in coco.getAnnIds(catIds=[cid], iscrowd=None)]
        if areas:
            assert row["median_pixel_area"] == pytest.approx(float(np.median(areas)))
            assert row["small_share"] == pytest.approx(np.mean(np.array(areas) < 32**2))
            assert row["large_share"] == pytest.approx(np.mean(np.array(areas) >= 96**2))
        else:
            assert not bool(row["rare"])  # the empty placeholder category is absent, not rare
    assert {c for c in rows.index if instances[c]} and pixels[4] > 0

    # the rows behind it: per image and per annotation
    imgs = pd.read_parquet(tmp_path / "eda" / "images.parquet").set_index("image_id")
    px_cols = ["px_background"] + [f"px_{coco.cats[c]['name']}" for c in instances]
    for img_id, counts in per_image.items():
        assert imgs.loc[img_id, px_cols].tolist() == counts
    anns = pd.read_parquet(tmp_path / "eda" / "annotations.parquet").set_index("annotation_id")
    assert len(anns) == len(coco.anns)
    assert all(anns.loc[a, "pixel_area"] == px for a, px in ann_px.items())
    assert (anns["coco_size"] == "small").sum() == sum(px < 32**2 for px in ann_px.values())

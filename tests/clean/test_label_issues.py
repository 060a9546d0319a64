"""Label issues at small scale: noise injected into a clean dataset, probabilities made from the clean labels (a
smoothed one-hot, so the right answer is known); every injected problem must rank first."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from clean_builders import CATEGORIES, annotation, smooth_image, square, write_dataset

from datatools.clean import run_clean
from datatools.clean.label_issues import read_probs
from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.masks import mask_to_rle, rasterize_semantic

HW = (64, 64)
K = len(CATEGORIES)


def _clean_dataset(rng: np.random.Generator) -> tuple[list[tuple[str, np.ndarray]], list[dict[str, Any]]]:
    images, anns = [], []
    for i in range(1, 13):
        images.append((f"img{i:02d}.png", smooth_image(rng, HW)))
        for k, (x, y) in enumerate(((4, 4), (36, 6), (8, 38))):
            anns.append(annotation(100 * i + k, i, int(rng.integers(1, K + 1)), square(x, y, 18 + k * 2)))
    return images, anns


def _smoothed_one_hot(mask: np.ndarray, eps: float = 0.1) -> np.ndarray:
    """(K + 1, H, W): 1 - eps on the clean label, eps spread over the others; uniform under ignore."""
    probs = np.full((K + 1, *mask.shape), eps / K, np.float32)
    labelled = mask != IGNORE_INDEX
    for v in range(K + 1):
        probs[v][(mask == v) & labelled] = 1.0 - eps
    probs[:, ~labelled] = 1.0 / (K + 1)
    return probs


def test_injected_label_noise_ranks_first(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    images, clean = _clean_dataset(rng)
    cm = ClassMap.from_categories(CATEGORIES)
    probs_dir = tmp_path / "probs"
    probs_dir.mkdir()
    for i, (name, _) in enumerate(images, start=1):
        mask = rasterize_semantic([a for a in clean if a["image_id"] == i], *HW, cm)
        np.save(probs_dir / name.replace(".png", ".npy"), _smoothed_one_hot(mask).astype(np.float16))
    noisy = copy.deepcopy(clean)
    flipped = [noisy[k]["id"] for k in (1, 8, 20)]
    for k in (1, 8, 20):
        noisy[k]["category_id"] = noisy[k]["category_id"] % K + 1  # another class
    deleted = [noisy.pop(k) for k in (33, 14)]  # removed objects: the model still sees them
    spurious = [annotation(9000 + j, i, 1 + j % K, square(40, 40, 14)) for j, i in enumerate((2, 7))]
    noisy += spurious
    ann, root, _ = write_dataset(tmp_path / "ds", images, noisy)
    result = run_clean(ann, root, out=tmp_path / "out", probs=probs_dir, checks="labels", workers=2,
                       progress=False)
    issues = [f for f in result.findings if f.kind == "label-issue"]
    injected = set(flipped) | {a["id"] for a in spurious}
    top = [f.annotation_ids[0] for f in issues[:len(injected)]]
    assert set(top) == injected  # every injected annotation in the top ranks, nothing else above them
    assert len(issues) == len(injected)
    missing = [f for f in result.findings if f.kind == "label-missing"]
    assert sorted(f.image_id for f in missing) == sorted(a["image_id"] for a in deleted)
    for f, a in zip(sorted(missing, key=lambda f: f.image_id), sorted(deleted, key=lambda a: a["image_id"]),
                    strict=True):
        assert f.extra["box_xywh"][:2] == (int(a["bbox"][0]), int(a["bbox"][1]))
    # per-image scores: the noisy images score below every untouched one
    scores = pd.read_parquet(tmp_path / "out" / "label_scores.parquet")
    per_image = scores[scores["level"] == "image"].set_index("image_id")["quality"]
    touched = {a["image_id"] for a in deleted + spurious} | {a["image_id"] for a in clean if a["id"] in flipped}
    assert per_image[list(touched)].max() < per_image.drop(list(touched)).min()
    # untouched annotations score 1 - eps
    ann_scores = scores[scores["level"] == "annotation"].set_index("annotation_id")["quality"]
    untouched = [a["id"] for a in noisy if a["id"] not in injected]
    assert np.allclose(ann_scores[untouched], 0.9, atol=1e-3)


def test_ignore_pixels_take_no_part(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    images = [("a.png", smooth_image(rng, HW))]
    anns = [annotation(1, 1, 1, square(4, 4, 20))]
    ann, root, coco = write_dataset(tmp_path / "ds", images, anns)
    ignore = np.zeros(HW, bool)
    ignore[40:60, 40:60] = True
    coco["images"][0]["datatools"] = {"ignore": [mask_to_rle(ignore)]}
    ann.write_text(json.dumps(coco))
    probs = np.zeros((K + 1, *HW), np.float32)
    probs[0] = 1.0
    probs[:, 4:24, 4:24] = 0.0
    probs[1, 4:24, 4:24] = 1.0
    probs[:, ignore] = 0.0
    probs[3, ignore] = 1.0  # the model is sure of class c under the ignore region: it must not matter
    (tmp_path / "p").mkdir()
    np.save(tmp_path / "p" / "a.npy", probs.astype(np.float16))
    result = run_clean(ann, root, out=tmp_path / "out", probs=tmp_path / "p", checks="labels", workers=1,
                       progress=False)
    assert not result.findings
    scores = pd.read_parquet(tmp_path / "out" / "label_scores.parquet")
    assert scores["quality"].tolist() == [1.0, 1.0]


def test_predict_npz_probabilities_are_resized_to_the_image(tmp_path: Path) -> None:
    import io
    import zipfile

    probs = np.zeros((K + 1, 32, 32), np.uint8)
    probs[0] = 255
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, array in (("probs", probs), ("shape_hw", np.array(HW, np.int64))):
            member = io.BytesIO()
            np.lib.format.write_array(member, array, allow_pickle=False)
            zf.writestr(f"{name}.npy", member.getvalue())
    (tmp_path / "img.npz").write_bytes(buf.getvalue())
    out = read_probs(tmp_path / "img.npz", HW, K + 1)
    assert out.shape == (K + 1, *HW) and out.dtype == np.float32
    assert np.allclose(out[0], 1.0) and np.allclose(out[1:], 0.0)
    with pytest.raises(ValueError, match="4 probability channels, expected 5"):
        read_probs(tmp_path / "img.npz", HW, K + 2)

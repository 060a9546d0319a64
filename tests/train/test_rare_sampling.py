"""Repeat-factor sampling (LVIS) and class weights of ``fit``: against formulas computed here from the raw COCO."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from datatools.core.dataset import Dataset
from datatools.core.rarity import RARE_THRESHOLD
from datatools_train.class_weights import class_weights, weights_from_shares
from datatools_train.config import Mode
from datatools_train.sampling import RepeatFactorSampler, repeat_factors

EXAMPLES = Path(__file__).parents[2] / "examples" / "medical_waste"


def _lvis_reference(coco: dict, threshold: float) -> tuple[np.ndarray, dict[int, set[int]]]:
    """Per-image LVIS repeat factors straight from the json: f_c, r_c = max(1, sqrt(t / f_c)), r_i = max r_c."""
    ids = [img["id"] for img in coco["images"]]
    holds: dict[int, set[int]] = {i: set() for i in ids}
    for ann in coco["annotations"]:
        if not ann.get("iscrowd", 0):
            holds[ann["image_id"]].add(ann["category_id"])
    share = {c["id"]: sum(c["id"] in h for h in holds.values()) / len(ids) for c in coco["categories"]}
    r = np.array([max([max(1.0, math.sqrt(threshold / share[c])) for c in holds[i]], default=1.0) for i in ids])
    return r, holds


@pytest.mark.shared_data
@pytest.mark.parametrize("threshold", [None, 0.8])
def test_repeat_factor_draws_medical_waste(shared_data: Path, threshold: float | None) -> None:
    root = shared_data / "medical_waste" / "train"
    ann = root / "_annotations.coco.json"
    coco = json.loads(ann.read_text())
    rf = repeat_factors([Dataset.load(ann, root)], threshold)
    counts = {c["id"]: 0 for c in coco["categories"]}
    for h in _lvis_reference(coco, 1.0)[1].values():
        for c in h:
            counts[c] += 1
    top_share = max(counts.values()) / len(coco["images"])
    t = threshold if threshold is not None else RARE_THRESHOLD * top_share
    assert rf.threshold == pytest.approx(t)
    reference, holds = _lvis_reference(coco, t)
    np.testing.assert_allclose(rf.factors, reference, rtol=1e-12)

    sampler = RepeatFactorSampler(rf.factors, seed=3)
    draws: list[int] = []
    for epoch in range(1, 10_000 // len(reference) + 2):
        sampler.set_epoch(epoch)
        draws += list(sampler)
    draws = draws[: (10_000 // len(reference) + 1) * len(reference)]  # whole epochs: 20 x 512 = 10,240 draws
    freq = np.bincount(draws, minlength=len(reference)) / len(draws)
    share = reference / reference.sum()
    assert np.all(np.abs(freq - share) <= 0.05 * share), np.abs(freq / share - 1).max()

    # the rarest class's share of the sampled images rises from its image share to the target sum of its images' p
    ids = [img["id"] for img in coco["images"]]
    rarest = min((c for c in counts if counts[c]), key=lambda c: counts[c])
    has = np.array([rarest in holds[i] for i in ids])
    before, target = has.mean(), share[has].sum()
    sampled = has[np.asarray(draws)].mean()
    assert sampled == pytest.approx(target, abs=0.005)
    if threshold == 0.8:
        assert target > before + 0.02  # Blood bag: 41.0% of the images, 43.7% of the draws


def test_sampler_epochs_continue_the_stream_and_equal_weights_shuffle() -> None:
    sampler = RepeatFactorSampler([1.0, 3.0, 1.5, 1.0, 2.5], seed=0, per_epoch=7)
    stream = sampler.stream(21)
    for epoch in (1, 2, 3):
        sampler.set_epoch(epoch)
        assert sorted(sampler) == sorted(stream[(epoch - 1) * 7: epoch * 7].tolist())
    plain = RepeatFactorSampler(np.ones(9), seed=5)
    plain.set_epoch(4)
    order = list(plain)
    assert sorted(order) == list(range(9)) and order != list(range(9))
    with pytest.raises(ValueError):
        RepeatFactorSampler([1.0, 0.0])


def test_class_weight_rules() -> None:
    shares = [0.9, 0.08, 0.02, 0.0]
    inv = np.array([1 / 0.9, 1 / 0.08, 1 / 0.02])
    np.testing.assert_allclose(weights_from_shares(shares, "inverse")[:3], inv * 3 / inv.sum())
    sq = 1 / np.sqrt([0.9, 0.08, 0.02])
    np.testing.assert_allclose(weights_from_shares(shares, "sqrt-inverse")[:3], sq * 3 / sq.sum())
    med = 0.08 / np.array([0.9, 0.08, 0.02])
    np.testing.assert_allclose(weights_from_shares(shares, "auto")[:3], med * 3 / med.sum())
    assert weights_from_shares(shares, "auto")[3] == 1.0  # no pixels: never weighed


def test_class_weights_of_a_dataset_and_a_file(tmp_path: Path) -> None:
    ds = Dataset.load(EXAMPLES / "train" / "_annotations.coco.json", EXAMPLES / "train")
    names = ["background", *[c["name"] for c in ds.categories]]
    w = class_weights("inverse", [ds], Mode.MULTICLASS, names)
    assert len(w) == len(names) and w[0] < min(w[2:])  # background is the commonest output
    f = tmp_path / "w.json"
    f.write_text(json.dumps({"Blood bag": 4.0}))
    assert class_weights(str(f), [ds], Mode.MULTICLASS, names) == [1.0, 1.0, 4.0, 1.0, 1.0, 1.0]
    f.write_text(json.dumps({"nope": 4.0}))
    with pytest.raises(Exception, match="unknown class"):
        class_weights(str(f), [ds], Mode.MULTICLASS, names)

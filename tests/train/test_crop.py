"""``fit --crop SIZE --crop-rare P``: full-resolution crops of the right size, padded with ignore, centred on a rare
class as often as asked, the same for the same seed, and a tiny fit through the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools_train.augment import build_transform  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.crop import RandomCrop, rare_values  # noqa: E402
from datatools_train.data import MaskSource, SegmentationData  # noqa: E402

runner = CliRunner()


def _coordinates(h: int, w: int) -> np.ndarray:
    """An image whose pixel (y, x) is (y, x, 7): a crop tells where it was taken."""
    ys, xs = np.mgrid[:h, :w]
    return np.stack([ys, xs, np.full_like(ys, 7)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(("h", "w"), [(100, 150), (40, 150)])
def test_crops_are_slices_of_the_full_resolution_image_padded_with_ignore(h: int, w: int) -> None:
    image = _coordinates(h, w)
    mask = (np.arange(h * w).reshape(h, w) % 5).astype(np.uint8)
    crop = RandomCrop(64, seed=3)
    origins = set()
    for index in range(40):
        got_image, got_mask = crop(image, mask, index % 4)
        assert got_image.shape == (64, 64, 3) and got_mask.shape == (64, 64)
        y, x = int(got_image[0, 0, 0]), int(got_image[0, 0, 1])
        rows = min(64, h - y)
        np.testing.assert_array_equal(got_image[:rows], image[y:y + rows, x:x + 64])
        np.testing.assert_array_equal(got_mask[:rows], mask[y:y + rows, x:x + 64])
        assert (got_image[rows:] == 0).all() and (got_mask[rows:] == 255).all()  # padding: black, ignored
        origins.add((y, x))
    assert len(origins) > 20  # the k-th crop of an item differs from its earlier ones
    again = RandomCrop(64, seed=3)
    assert all(np.array_equal(again(image, mask, i % 4)[0], RandomCrop(64, seed=3, first_draw=i // 4)(
        image, mask, i % 4)[0]) for i in range(8))  # per-item seeds: (seed, index, k)
    assert not np.array_equal(RandomCrop(64, seed=4)(image, mask, 0)[0], RandomCrop(64, seed=3)(image, mask, 0)[0])


@pytest.fixture(scope="module")
def shapes(tiny_multiclass: tuple[Path, Path]) -> Dataset:
    return Dataset.from_dir(tiny_multiclass[0])


def _holds(data: SegmentationData, p_rare: float, value: int, draws: int) -> tuple[float, int]:
    """Share of the crops of the images holding ``value`` that contain it, over ``draws`` crops per image."""
    data.crop = RandomCrop(32, frozenset({value}), p_rare, seed=0)
    hits = total = 0
    for index in range(len(data)):
        if not (data.raw(index)[1] == value).any():
            continue
        for _ in range(draws):
            _, target = data[index]
            hits += int((target == value).any())
            total += 1
    return hits / total, total


def test_crop_rare_centres_crops_on_the_rare_class_as_often_as_asked(shapes: Dataset) -> None:
    """The shapes: red in all 16 images, blue in 11 (under 0.8 x 16: rare). Crops of 32 px of the 64 px images."""
    blue = shapes.class_map().value_of(12)
    assert rare_values([shapes], shapes.class_map()) == frozenset({blue})
    data = SegmentationData([MaskSource(shapes)], Mode.MULTICLASS, build_transform(32, train=False))
    always, n = _holds(data, 1.0, blue, 30)
    uniform, _ = _holds(data, 0.0, blue, 30)
    half, _ = _holds(data, 0.5, blue, 30)
    assert n == 11 * 30 and always == 1.0  # every crop of an image holding blue contains blue
    assert 0.2 < uniform < 0.8  # without the bias many crops miss it
    assert half == pytest.approx(0.5 + 0.5 * uniform, abs=0.08)  # P + (1 - P) x the uniform share


def test_crop_rare_finds_the_rare_plane_of_multilabel_masks() -> None:
    planes = np.zeros((90, 90, 3), np.uint8)
    planes[80:84, 5:9, 2] = 1  # value 3 (plane 2), a 4 x 4 spot in a corner
    planes[:, :, 0] = 1
    crop = RandomCrop(32, frozenset({3}), 1.0, seed=1)
    for i in range(50):
        _, got = crop(np.zeros((90, 90, 3), np.uint8), planes, i)
        assert got.shape == (32, 32, 3) and got[..., 2].any()


def test_a_tiny_fit_with_crops_runs_through_the_cli(tiny_multiclass: tuple[Path, Path], tmp_path: Path) -> None:
    train, val = tiny_multiclass
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "fit", "--data", str(train), "--val-data", str(val), "--crop", "32",
                                 "--crop-rare", "0.5", "--size", "64", "--epochs", "1", "--batch", "16",
                                 "--encoder", "resnet18", "--weights", "none", "--workers", "0", "--no-progress",
                                 "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "centred on a rare class with p 0.5: ['blue']" in result.output
    config = json.loads((out / "config.json").read_text())
    assert (config["crop"], config["crop_rare"], config["size"]) == (32, 0.5, 64)
    assert (out / "best.pt").is_file()
    refused = runner.invoke(app, ["train", "fit", "--data", str(train), "--crop-rare", "0.5", "--out",
                                  str(tmp_path / "no")])
    assert refused.exit_code == 2 and "--crop-rare" in refused.stderr and "without --crop" in refused.stderr
    assert not (tmp_path / "no").exists()


def test_two_workers_meeting_an_item_take_different_crops(monkeypatch: pytest.MonkeyPatch) -> None:
    """Persistent DataLoader workers each count their own draws: the first crop of an item in worker 1 and in
    worker 2 must differ (the worker is part of the seed), or an item moved between workers repeats its crop."""
    import copy
    from types import SimpleNamespace

    import torch.utils.data

    mask = np.zeros((400, 400), np.uint8)
    crop = RandomCrop(32, seed=0)
    corners = []
    for worker in (0, 1):  # each worker holds its own copy of the dataset and so of the crop
        monkeypatch.setattr(torch.utils.data, "get_worker_info", lambda w=worker: SimpleNamespace(id=w))
        corners.append([copy.deepcopy(crop).window(mask, i) for i in range(8)])
    assert sum(a != b for a, b in zip(*corners, strict=True)) >= 6, corners

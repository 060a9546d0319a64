"""``predict --sliding-window``: tiled prediction equals a brute-force tile loop with the same blending, and a tile
the size of the image equals plain predict; ``predict --coco`` rasterises back to the predicted masks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

import cv2  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools_train.checkpoint import ModelSpec, save_checkpoint  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.ensemble import Ensemble, Item  # noqa: E402
from datatools_train.model import create_model  # noqa: E402
from datatools_train.predict import load_probs  # noqa: E402
from datatools_train.sliding import SlidingWindow  # noqa: E402
from datatools_train.tta import TTA, normalize  # noqa: E402

runner = CliRunner()
CLASSES = ({"value": 0, "category_id": None, "name": "background", "color": [0, 0, 0]},
           {"value": 1, "category_id": 1, "name": "a", "color": [200, 0, 0]},
           {"value": 2, "category_id": 2, "name": "b", "color": [0, 200, 0]})


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """An untrained Unet/resnet18 at side 64 (BatchNorm in eval mode: tiles are independent) and two images."""
    root = tmp_path_factory.mktemp("sliding")
    torch.manual_seed(0)
    spec = ModelSpec("Unet", "resnet18", CLASSES, Mode.MULTICLASS, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 64)
    model = create_model("Unet", "resnet18", classes=3, weights=None).eval()
    save_checkpoint(root / "best.pt", spec, model, epoch=1)
    rng = np.random.default_rng(0)
    images = root / "images"
    images.mkdir()
    big = cv2.GaussianBlur(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8), (0, 0), 3)
    cv2.imwrite(str(images / "big.png"), big)
    cv2.imwrite(str(images / "small.png"), big[:64, :64])
    return root / "best.pt", images


def _brute_force(ckpt: Path, image: np.ndarray, tile: int, stride: int, tta: TTA | None) -> np.ndarray:
    """Every tile on its own, through the model and its TTA views, blended with the same weights."""
    ens = Ensemble([ckpt], "cpu")
    model, spec = ens.members[0]
    h, w = image.shape[:2]
    ys = sorted({*range(0, h - tile + 1, stride), h - tile})
    xs = sorted({*range(0, w - tile + 1, stride), w - tile})
    weight = SlidingWindow(tile, stride).weights().numpy()
    total, norm = np.zeros((3, h, w)), np.zeros((h, w))
    for y in ys:
        for x in xs:
            crop = torch.from_numpy(np.ascontiguousarray(image[y:y + tile, x:x + tile].transpose(2, 0, 1)))[None]
            views = []
            for view in (tta or TTA()).views:
                flip = [3] if view == "hflip" else []
                xin = normalize(crop, spec.mean, spec.std)
                with torch.inference_mode():
                    out = model(torch.flip(xin, flip) if flip else xin)
                views.append((torch.flip(out, flip) if flip else out).softmax(dim=1)[0].numpy())
            total[:, y:y + tile, x:x + tile] += np.mean(views, axis=0) * weight
            norm[y:y + tile, x:x + tile] += weight
    return total / norm


@pytest.mark.parametrize(("tile", "stride", "tta"), [(64, 40, None), (96, 64, "hflip")])
def test_tiled_prediction_equals_a_brute_force_tile_loop(setup: tuple[Path, Path], tile: int, stride: int,
                                                         tta: str | None) -> None:
    ckpt, images = setup
    image = cv2.imread(str(images / "big.png"))[:, :, ::-1].copy()
    ens = Ensemble([ckpt], "cpu")
    item = Item("big.png", images / "big.png", 150, 200)
    pred = next(ens.predictions([item], tta=TTA.parse(tta), workers=0,
                                sliding=SlidingWindow(tile, stride, tile_batch=3)))
    expected = _brute_force(ckpt, image, tile, stride, TTA.parse(tta))
    np.testing.assert_allclose(pred.full.numpy(), expected, atol=2e-5)
    assert np.array_equal(pred.mask, expected.argmax(axis=0))


def test_band_by_band_prediction_equals_the_whole_image_one(setup: tuple[Path, Path]) -> None:
    """``keep_full=False`` (what predict uses: no (C, H, W) array of the image) gives the same mask and small
    probabilities; the bands are at most a tile high and cover the image once, in order."""
    ckpt, images = setup
    ens = Ensemble([ckpt], "cpu")
    item = Item("big.png", images / "big.png", 150, 200)
    window = SlidingWindow(64, 48, tile_batch=3)  # 4 tiles a row: batches straddle rows
    whole = next(ens.predictions([item], workers=0, sliding=window))
    banded = next(ens.predictions([item], workers=0, sliding=window, keep_full=False))
    assert banded.full is None
    np.testing.assert_array_equal(banded.mask, whole.mask)
    np.testing.assert_allclose(banded.probs.numpy(), whole.probs.numpy(), atol=1e-6)
    image = torch.from_numpy(cv2.imread(str(images / "big.png"))[:, :, ::-1].transpose(2, 0, 1).copy())
    bands = list(window.bands(image, lambda tiles: torch.ones(len(tiles), 3, 64, 64)))
    assert [first for first, _ in bands] == [0, 48, 86] and sum(b.shape[1] for _, b in bands) == 150
    assert all(torch.equal(b, torch.ones_like(b)) for _, b in bands)
    assert max(b.shape[1] for _, b in bands) <= 64 and all(b.shape[2] == 200 for _, b in bands)


def test_tile_equal_to_the_image_equals_plain_predict(setup: tuple[Path, Path], tmp_path: Path) -> None:
    ckpt, images = setup
    args = ["train", "predict", "--ckpt", str(ckpt), "--images", str(images), "--workers", "0", "--save-probs",
            "--probs-dtype", "float16", "--no-progress"]
    plain = runner.invoke(app, [*args, "--out", str(tmp_path / "plain")])
    tiled = runner.invoke(app, [*args, "--sliding-window", "64", "--blend", "uniform", "--out", str(tmp_path / "t")])
    assert plain.exit_code == 0 and tiled.exit_code == 0, (plain.output, tiled.output)
    a, _ = load_probs(tmp_path / "plain" / "probs" / "small.npz")
    b, _ = load_probs(tmp_path / "t" / "probs" / "small.npz")
    np.testing.assert_allclose(a, b, atol=1e-3)
    assert (tmp_path / "plain" / "ann_dir" / "small.png").read_bytes() == (tmp_path / "t" / "ann_dir" /
                                                                          "small.png").read_bytes()


def test_tile_origins_cover_the_axis() -> None:
    window = SlidingWindow.parse("512,384")
    assert window.starts(1000) == [0, 384, 488] and window.starts(300) == [0]
    assert SlidingWindow.parse("64").stride == 32
    with pytest.raises(ValueError, match="multiple of 32"):
        SlidingWindow.parse("70")


def test_predict_coco_rasterises_back_to_the_predicted_masks(setup: tuple[Path, Path], tmp_path: Path) -> None:
    """``--coco`` writes a dataset whose annotations, through the one rasteriser, give the masks in ann_dir."""
    from PIL import Image

    from datatools.core.dataset import Dataset
    from datatools.core.masks import rasterize_semantic

    ckpt, images = setup
    out = tmp_path / "pred"
    result = runner.invoke(app, ["train", "predict", "--ckpt", str(ckpt), "--images", str(images), "--workers", "0",
                                 "--coco", "--mask-format", "gray", "--no-progress", "--out", str(out)])
    assert result.exit_code == 0, result.output
    ds = Dataset.load(out / "coco" / "annotations.json", out / "coco" / "images")
    assert sorted(i["file_name"] for i in ds.images) == ["big.png", "small.png"]
    assert len({a["category_id"] for a in ds.annotations}) == 2  # the untrained model predicts both classes
    for img in ds.images:
        assert ds.image_path(img).read_bytes() == (images / img["file_name"]).read_bytes()
        mask = np.asarray(Image.open(out / "ann_dir" / img["file_name"]))
        back = rasterize_semantic(ds.annotations_of(img["id"]), img["height"], img["width"], ds.class_map(),
                                  "smaller-on-top")
        assert np.array_equal(back, mask)


def _annotated(root: Path, pictures: dict[str, np.ndarray]) -> Path:
    """A dataset folder of ``pictures`` (name -> RGB image) with one square of class a and one of b in each."""
    import json

    (root / "images").mkdir(parents=True)
    records, anns = [], []
    for i, (name, picture) in enumerate(pictures.items()):
        cv2.imwrite(str(root / "images" / name), picture[:, :, ::-1])
        h, w = picture.shape[:2]
        records.append({"id": i + 1, "file_name": name, "height": h, "width": w})
        for cat, (x, y, s) in ((1, (4, 6, 30)), (2, (w // 2, h // 2, 24))):
            poly = [x, y, x + s, y, x + s, y + s, x, y + s]
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cat, "iscrowd": 0,
                         "segmentation": [poly], "area": s * s, "bbox": [x, y, s, s]})
    coco = {"images": records, "annotations": anns, "categories": [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]}
    (root / "annotations.json").write_text(json.dumps(coco))
    return root


def _rgb(path: Path) -> np.ndarray:
    return cv2.imread(str(path))[:, :, ::-1].copy()


def _metrics(out: Path) -> dict:
    import json

    return json.loads((out / "metrics.json").read_text())


EVAL = ["train", "evaluate", "--workers", "0", "--no-errors", "--worst", "0", "--no-progress"]
WINDOW = ["--sliding-window", "64,48"]


@pytest.fixture(scope="module")
def predicted(setup: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, np.ndarray]]:
    """``predict`` masks of the setup's images, with ``--sliding-window 64,48`` ("tiled") and without ("plain");
    on the image larger than the tile they differ."""
    from PIL import Image

    ckpt, images = setup
    root = tmp_path_factory.mktemp("predicted")
    masks: dict[str, dict[str, np.ndarray]] = {}
    for kind, extra in (("tiled", WINDOW), ("plain", [])):
        result = runner.invoke(app, ["train", "predict", "--ckpt", str(ckpt), "--images", str(images), *extra,
                                     "--mask-format", "gray", "--workers", "0", "--no-progress", "--out",
                                     str(root / kind)])
        assert result.exit_code == 0, result.output
        masks[kind] = {name: np.asarray(Image.open(root / kind / "ann_dir" / name))
                       for name in ("big.png", "small.png")}
    assert (masks["tiled"]["big.png"] != masks["plain"]["big.png"]).any()
    return masks


def test_evaluate_with_a_tile_equal_to_the_image_scores_as_plain_evaluate(setup: tuple[Path, Path],
                                                                          tmp_path: Path) -> None:
    import pandas as pd

    ckpt, images = setup
    big = _rgb(images / "big.png")
    data = _annotated(tmp_path / "ds", {"corner.png": big[-64:, -64:]})
    args = [*EVAL, "--ckpt", str(ckpt), "--data", str(data)]
    plain = runner.invoke(app, [*args, "--out", str(tmp_path / "plain")])
    tiled = runner.invoke(app, [*args, "--sliding-window", "64", "--blend", "uniform", "--out", str(tmp_path / "t")])
    assert plain.exit_code == 0 and tiled.exit_code == 0, (plain.output, tiled.output)
    a, b = _metrics(tmp_path / "plain"), _metrics(tmp_path / "t")
    assert a["sliding_window"] is None and b["sliding_window"] == {"tile": 64, "stride": 32, "blend": "uniform"}
    assert (a["score"], a["per_class"]) == (b["score"], b["per_class"])
    assert 0 < a["per_class"]["a"]["iou"] < 1  # an untrained model: a score with room either way
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "plain" / "per_image.parquet"),
                                  pd.read_parquet(tmp_path / "t" / "per_image.parquet"))


def test_evaluate_sliding_scores_the_masks_of_predict_sliding(setup: tuple[Path, Path], predicted: dict[str, dict[
        str, np.ndarray]], tmp_path: Path) -> None:
    """On an image larger than the tile, evaluate's IoU is that of predict --sliding-window's mask (numpy)."""
    from datatools.core.dataset import Dataset
    from datatools.core.masks import rasterize_semantic

    ckpt, images = setup
    data = _annotated(tmp_path / "ds", {"big.png": _rgb(images / "big.png")})
    ev = runner.invoke(app, [*EVAL, "--ckpt", str(ckpt), "--data", str(data), *WINDOW,
                             "--out", str(tmp_path / "e")])
    assert ev.exit_code == 0, ev.output
    mask = predicted["tiled"]["big.png"]
    ds = Dataset.from_dir(data)
    truth = rasterize_semantic(ds.annotations, 150, 200, ds.class_map(), "smaller-on-top")
    got = _metrics(tmp_path / "e")
    assert got["sliding_window"] == {"tile": 64, "stride": 48, "blend": "gaussian"}
    for value, name in enumerate(["background", "a", "b"]):
        inter, union = ((mask == value) & (truth == value)).sum(), ((mask == value) | (truth == value)).sum()
        assert got["per_class"][name]["iou"] == pytest.approx(inter / union, abs=1e-6)


def test_pseudo_label_sliding_labels_are_the_masks_of_predict_sliding(setup: tuple[Path, Path], predicted: dict[
        str, dict[str, np.ndarray]], tmp_path: Path) -> None:
    """Every pixel confident (threshold under 1/3): the pseudo labels rasterise to predict --sliding-window's
    masks, on an image larger than the tile (where they differ from plain predict's)."""
    from datatools.core.dataset import Dataset
    from datatools.core.masks import rasterize_semantic

    ckpt, images = setup
    result = runner.invoke(app, ["pseudo-label", "--ckpt", str(ckpt), "--images", str(images), *WINDOW,
                                 "--threshold", "0.01", "--min-area", "0", "--workers", "0", "--no-progress",
                                 "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    ds = Dataset.from_dir(tmp_path / "s")
    assert sorted(img["file_name"] for img in ds.images) == ["big.png", "small.png"]
    for img in ds.images:
        assert not img["datatools"].get("ignore")
        assert img["datatools"]["params"]["predictions"]["sliding_window"] == {"tile": 64, "stride": 48,
                                                                               "blend": "gaussian"}
        got = rasterize_semantic(ds.annotations_of(img["id"]), img["height"], img["width"], ds.class_map())
        np.testing.assert_array_equal(got, predicted["tiled"][img["file_name"]])

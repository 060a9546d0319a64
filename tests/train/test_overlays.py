"""``predict --overlays``: one PNG per image, the image (resized as written) beside the prediction painted in the
colours of classes.json as documented, and a legend of every class under odd names."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

import cv2  # noqa: E402
from PIL import Image  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

import datatools_train.overlays as overlays  # noqa: E402
from datatools.cli.main import app  # noqa: E402
from datatools.core.classes import ClassMap  # noqa: E402
from datatools_train.checkpoint import ModelSpec, save_checkpoint  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.model import create_model  # noqa: E402

runner = CliRunner()
NAMES = ["$", "_hidden", "x" * 300, "dup", "dup"]
CLASSES = ({"value": 0, "category_id": None, "name": "background", "color": [0, 0, 0]},
           *({"value": v, "category_id": v, "name": n, "color": c} for v, n, c in zip(
               range(1, 6), NAMES, ([230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48]),
               strict=True)))


def _erode(plane: np.ndarray, px: int) -> np.ndarray:
    return cv2.erode(plane.astype(np.uint8), np.ones((2 * px + 1, 2 * px + 1), np.uint8)).astype(bool)


def test_overlays_show_the_image_beside_its_painted_prediction_with_a_legend(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    torch.manual_seed(1)
    spec = ModelSpec("Unet", "resnet18", CLASSES, Mode.MULTICLASS, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), 64)
    save_checkpoint(tmp_path / "best.pt", spec, create_model("Unet", "resnet18", classes=6, weights=None).eval(),
                    epoch=1)
    rng = np.random.default_rng(0)
    images = tmp_path / "images"
    (images / "sub").mkdir(parents=True)
    pictures = {"big.png": cv2.GaussianBlur(rng.integers(0, 256, (150, 200, 3), dtype=np.uint8), (0, 0), 4),
                "sub/small.jpg": cv2.GaussianBlur(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8), (0, 0), 4)}
    for name, picture in pictures.items():
        cv2.imwrite(str(images / name), picture[:, :, ::-1])
    monkeypatch.setattr(overlays, "MAX_SIDE", 100)  # the big image is cut to 100 x 75, the small one kept
    out = tmp_path / "pred"
    result = runner.invoke(app, ["train", "predict", "--ckpt", str(tmp_path / "best.pt"), "--images", str(images),
                                 "--overlays", "--mask-format", "gray", "--workers", "0", "--no-progress", "--out",
                                 str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(out / "overlays").as_posix() for p in (out / "overlays").rglob("*.png")) == [
        "big.png", "sub/small.png"]
    palette = ClassMap.load(out / "classes.json").palette()
    checked = 0
    for name, (w, h) in (("big.png", (100, 75)), ("sub/small.jpg", (64, 64))):
        original = np.asarray(Image.open(images / name).convert("RGB"))
        image = original if original.shape[:2] == (h, w) else cv2.resize(original, (w, h),
                                                                          interpolation=cv2.INTER_AREA)
        mask = np.asarray(Image.open(out / "ann_dir" / Path(name).with_suffix(".png")))
        mask = cv2.resize(mask, (w, h), interpolation=cv2.INTER_NEAREST)
        pic = np.asarray(Image.open(out / "overlays" / Path(name).with_suffix(".png")).convert("RGB"))
        assert pic.shape[1] == 2 * w and pic.shape[0] > h  # the 300-character name does not widen it
        np.testing.assert_array_equal(pic[:h, :w], image)
        right = pic[:h, w:]
        tinted = cv2.addWeighted(image, 0.55, palette[mask], 0.45, 0.0)
        for value in range(6):
            inner = _erode(mask == value, 4)  # away from the 2 px outlines
            want = image if value == 0 else tinted
            np.testing.assert_array_equal(right[inner], want[inner])
            checked += int(inner.sum()) if value else 0
        legend = pic[h:]
        for c in CLASSES[1:]:  # every class has its swatch, duplicates and odd names included
            assert np.all(legend == c["color"], axis=-1).sum() >= 12 * 12, c["name"]
        assert (legend.max(axis=-1) < 80).sum() > 100  # the names in black
    assert checked > 100  # the untrained model paints some classes


def test_legend_entries_are_the_display_names_and_classes_json_colours() -> None:
    cm = ClassMap.from_categories([{"id": v, "name": n} for v, n in enumerate(NAMES, start=1)])
    entries = overlays.legend_entries(cm)
    assert [n for n, _ in entries] == ["$", "_hidden", "x" * 300, "dup (id 4)", "dup (id 5)"]
    assert [list(c) for _, c in entries] == cm.palette()[1:6].tolist()
    strip = overlays._legend(entries, 120)
    assert strip.shape[1] == 120 and strip.shape[0] > 5 * 14  # one entry per line at this width


def test_multilabel_overlaps_show_the_highest_class() -> None:
    image = np.full((40, 40, 3), 100, np.uint8)
    planes = np.zeros((2, 40, 40), bool)
    planes[0, 5:30, 5:30] = True
    planes[1, 15:38, 15:38] = True
    palette = np.zeros((256, 3), np.uint8)
    palette[1], palette[2] = (250, 0, 0), (0, 0, 250)
    pic = overlays.overlay_picture(image, planes, palette, [("a", (250, 0, 0)), ("b", (0, 0, 250))])
    right = pic[:40, 40:]

    def tint(value: int) -> list[int]:
        return cv2.addWeighted(image[:1, :1], 0.55, palette[value][None, None], 0.45, 0)[0, 0].tolist()

    assert right[20, 20].tolist() == tint(2) and right[10, 10].tolist() == tint(1)
    assert right[2, 38].tolist() == [100, 100, 100]

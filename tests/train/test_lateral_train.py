"""Lateral pairs in the trainer: online flips swap paired mask values, checkpoints keep the pairs, and TTA swaps a
mirrored view's paired channels back (an exactly lateral model predicts the same with and without flips)."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from typer.testing import CliRunner  # noqa: E402

import datatools_train.ensemble as ensemble_module  # noqa: E402
from datatools.cli.main import app  # noqa: E402
from datatools.core.classes import ClassMap  # noqa: E402
from datatools.core.errors import DatatoolsError  # noqa: E402
from datatools.core.lateral import find_pairs, resolve_pairs  # noqa: E402
from datatools.core.masks import rasterize_multilabel, rasterize_semantic  # noqa: E402
from datatools_train.augment import build_transform  # noqa: E402
from datatools_train.checkpoint import ModelSpec, load_checkpoint  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.ensemble import Ensemble  # noqa: E402
from datatools_train.tta import TTA, predict_probs  # noqa: E402

pytestmark = pytest.mark.train
SIDE = 64
CATEGORIES = [{"id": 7, "name": "left_x"}, {"id": 9, "name": "right_x"}, {"id": 4, "name": "heart"}]
# values: left_x 1, right_x 2, heart 3
ANNS = [{"id": 1, "category_id": 7, "iscrowd": 0, "segmentation": [[40, 10, 60, 10, 60, 20, 48, 20, 48, 50, 40, 50]]},
        {"id": 2, "category_id": 9, "iscrowd": 0, "segmentation": [[4, 20, 12, 20, 12, 40, 24, 40, 24, 50, 4, 50]]},
        {"id": 3, "category_id": 4, "iscrowd": 0, "segmentation": [[26, 30, 36, 30, 30, 44]]}]


def _yaml(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "aug.yaml"
    path.write_text(text)
    return path


@pytest.fixture
def class_map() -> ClassMap:
    return ClassMap.from_categories(CATEGORIES)


def test_online_flip_swaps_mask_values(tmp_path: Path, class_map: ClassMap) -> None:
    mask = rasterize_semantic(ANNS, SIDE, SIDE, class_map)
    assert set(np.unique(mask)) == {0, 1, 2, 3}
    image = np.random.default_rng(0).integers(0, 256, (SIDE, SIDE, 3), dtype=np.uint8)
    pairs = find_pairs(CATEGORIES)
    swap = np.array([0, 2, 1, 3], np.uint8)
    t = build_transform(SIDE, train=True, aug=_yaml(tmp_path, "- HorizontalFlip: {p: 1.0}\n"),
                        lateral=(pairs, class_map))
    out = t(image=image, mask=mask)
    np.testing.assert_array_equal(out["image"], image[:, ::-1])
    np.testing.assert_array_equal(out["mask"], swap[mask[:, ::-1]])
    # p = 0.5: every sample is either untouched or mirrored with its pairs swapped, and both happen
    t = build_transform(SIDE, train=True, aug=_yaml(tmp_path, "- HorizontalFlip: {p: 0.5}\n"),
                        lateral=(pairs, class_map))
    seen = set()
    for seed in range(12):
        t.set_random_seed(seed)
        got = t(image=image, mask=mask)["mask"]
        flipped = not np.array_equal(got, mask)
        np.testing.assert_array_equal(got, swap[mask[:, ::-1]] if flipped else mask)
        seen.add(flipped)
    assert seen == {True, False}
    # a vertical flip has no pairs to swap here; "none" keeps every value
    t = build_transform(SIDE, train=True, aug=_yaml(tmp_path, "- VerticalFlip: {p: 1.0}\n"),
                        lateral=(pairs, class_map))
    np.testing.assert_array_equal(t(image=image, mask=mask)["mask"], mask[::-1])
    t = build_transform(SIDE, train=True, aug=_yaml(tmp_path, "- HorizontalFlip: {p: 1.0}\n"),
                        lateral=(resolve_pairs("none", CATEGORIES), class_map))
    np.testing.assert_array_equal(t(image=image, mask=mask)["mask"], mask[:, ::-1])


def test_online_flip_swaps_multilabel_planes(tmp_path: Path, class_map: ClassMap) -> None:
    planes = np.ascontiguousarray(rasterize_multilabel(ANNS, SIDE, SIDE, class_map).transpose(1, 2, 0)).view(np.uint8)
    image = np.zeros((SIDE, SIDE, 3), np.uint8)
    t = build_transform(SIDE, train=True, aug=_yaml(tmp_path, "- HorizontalFlip: {p: 1.0}\n"),
                        lateral=(find_pairs(CATEGORIES), class_map))
    got = t(image=image, mask=planes)["mask"]
    np.testing.assert_array_equal(got, planes[:, ::-1][..., [1, 0, 2]])


def test_online_quarter_turns_are_refused_on_lateral_classes(tmp_path: Path, class_map: ClassMap) -> None:
    with pytest.raises(DatatoolsError, match="RandomRotate90"):
        build_transform(SIDE, train=True, aug=_yaml(tmp_path, "- RandomRotate90: {p: 0.5}\n"),
                        lateral=(find_pairs(CATEGORIES), class_map))


class LateralModel(torch.nn.Module):
    """Exactly lateral: a left_x score that grows to the image's right and a right_x score that grows to its left,
    both scaled by the image; background and heart depend on the pixel alone. So mirroring the input mirrors the
    output with left_x and right_x traded."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = x.mean(dim=1, keepdim=True)
        ramp = torch.linspace(-1.0, 1.0, x.shape[-1]).view(1, 1, 1, -1)
        return torch.cat([0.5 * g, 3 * g * ramp + 0.2, -3 * g * ramp + 0.2, g * g - 0.3], dim=1)


def _spec(lateral: dict[str, object] | None) -> ModelSpec:
    return ModelSpec("Unet", "resnet18", tuple(ClassMap.from_categories(CATEGORIES).to_json()), Mode.MULTICLASS,
                     (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), SIDE, lateral)


def test_tta_flips_on_an_exactly_lateral_model_change_nothing() -> None:
    x = torch.randn(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(0))
    model = LateralModel().eval()
    spec = _spec(find_pairs(CATEGORIES).to_json())
    assert spec.channel_swaps()["hflip"] == [0, 2, 1, 3]
    plain = predict_probs(model, x, Mode.MULTICLASS)
    views = TTA(("identity", "hflip", "vflip", "rot180"))
    with_tta = predict_probs(model, x, Mode.MULTICLASS, views, channel_swaps=spec.channel_swaps())
    torch.testing.assert_close(with_tta, plain, rtol=0, atol=1e-6)
    assert torch.equal(with_tta.argmax(1), plain.argmax(1))
    # without the swap the flipped views vote for the wrong side
    naive = predict_probs(model, x, Mode.MULTICLASS, views)
    assert (naive - plain).abs().max() > 0.1
    # multilabel: channels are the classes alone
    ml = predict_probs(model, x, Mode.MULTILABEL, views, channel_swaps={v: [0, 2, 1, 3] for v in ("hflip", "rot180")})
    torch.testing.assert_close(ml, predict_probs(model, x, Mode.MULTILABEL), rtol=0, atol=1e-6)


def test_checkpoint_pairs_reach_the_ensemble_tta(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from datatools_train.checkpoint import save_checkpoint

    spec = _spec(find_pairs(CATEGORIES).to_json())
    save_checkpoint(tmp_path / "m.pt", spec, torch.nn.Conv2d(3, 4, 1))
    loaded = ModelSpec.from_dict(load_checkpoint(tmp_path / "m.pt")["spec"])
    assert loaded.lateral == {"source": "auto", "horizontal": [[7, 9]], "vertical": []}
    assert ModelSpec.from_dict({**spec.to_dict(), "lateral": None}).channel_swaps() == {}  # older checkpoints
    monkeypatch.setattr(ensemble_module, "model_from_checkpoint",
                        lambda ckpt, device: (LateralModel().eval(), ModelSpec.from_dict(ckpt["spec"])))
    ens = Ensemble([tmp_path / "m.pt"], device="cpu")
    images = torch.randint(0, 256, (2, 3, SIDE, SIDE), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(ens.batch_probs(images, TTA.parse("hflip,vflip")), ens.batch_probs(images),
                               rtol=0, atol=1e-6)


def test_fit_records_the_pairs_and_refuses_bad_ones(tmp_path: Path) -> None:
    folder = tmp_path / "ds"
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    images, anns = [], []
    for i in range(4):
        cv2.imwrite(str(folder / "images" / f"{i}.png"), rng.integers(0, 255, (SIDE, SIDE, 3), dtype=np.uint8))
        images.append({"id": i, "file_name": f"{i}.png", "width": SIDE, "height": SIDE})
        anns += [{**a, "id": 10 * i + a["id"], "image_id": i, "area": 1.0, "bbox": [0, 0, 1, 1]} for a in ANNS]
    (folder / "annotations.json").write_text(json.dumps({"images": images, "annotations": anns,
                                                         "categories": CATEGORIES}))
    runner = CliRunner()
    fast = ["--encoder", "resnet18", "--weights", "none", "--size", "64", "--batch", "2", "--epochs", "1",
            "--workers", "0", "--no-progress", "--data", str(folder)]
    bad = runner.invoke(app, ["train", "fit", *fast, "--out", str(tmp_path / "bad"), "--lateral-pairs", "left_x=nope"])
    assert bad.exit_code == 2 and "'nope' is not a class" in bad.output and not (tmp_path / "bad").exists()
    result = runner.invoke(app, ["train", "fit", *fast, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "lateral pair: left_x <-> right_x (horizontal flips)" in result.output
    spec = ModelSpec.from_dict(load_checkpoint(tmp_path / "run" / "best.pt")["spec"])
    assert spec.lateral == {"source": "auto", "horizontal": [[7, 9]], "vertical": []}
    assert spec.channel_swaps()["hflip"] == [0, 2, 1, 3]

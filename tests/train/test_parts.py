"""The pieces of the trainer against independent references: metrics, losses, TTA, thresholds, soups, weights."""

from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from datatools.core.errors import DatatoolsError, InvalidDatasetError  # noqa: E402
from datatools_train.config import LossName, Mode, TrainConfig  # noqa: E402
from datatools_train.losses import build_loss  # noqa: E402
from datatools_train.metrics import MetricAccumulator  # noqa: E402
from datatools_train.soup import average_states  # noqa: E402
from datatools_train.thresholds import ThresholdSearch, parse_thresholds  # noqa: E402
from datatools_train.tta import TTA, predict_probs  # noqa: E402

pytestmark = pytest.mark.train


def test_multiclass_iou_matches_numpy_with_ignore() -> None:
    g = torch.Generator().manual_seed(0)
    pred = torch.randint(0, 4, (3, 20, 30), generator=g)
    target = torch.randint(0, 4, (3, 20, 30), generator=g)
    target[:, :5] = 255
    pred[pred == 3] = 2  # class 3 is never predicted, class 3 still has truth
    acc = MetricAccumulator(Mode.MULTICLASS, ["bg", "a", "b", "c"])
    acc.update(pred[:2], target[:2])
    acc.update(pred[2:], target[2:])
    scores = acc.compute()
    keep = (target != 255).numpy()
    p, t = pred.numpy(), target.numpy()
    expected = [((p == c) & (t == c) & keep).sum() / (((p == c) | (t == c)) & keep).sum() for c in range(4)]
    np.testing.assert_allclose(scores.iou, expected, rtol=1e-6)
    assert scores.score == pytest.approx(np.mean(expected))
    assert scores.per_class[3] == 0.0


def test_absent_class_has_no_score_and_is_left_out_of_the_mean() -> None:
    acc = MetricAccumulator(Mode.MULTICLASS, ["bg", "a", "never"])
    target = torch.zeros(1, 4, 4, dtype=torch.long)
    target[0, :2] = 1
    acc.update(target.clone(), target)
    scores = acc.compute()
    assert math.isnan(scores.iou[2]) and scores.score == 1.0


def test_multilabel_dice_matches_numpy_and_ignores_255() -> None:
    g = torch.Generator().manual_seed(1)
    pred = torch.randint(0, 2, (2, 3, 16, 16), generator=g)
    target = torch.randint(0, 2, (2, 3, 16, 16), generator=g)
    target[:, :, :4] = 255
    acc = MetricAccumulator(Mode.MULTILABEL, ["x", "y", "z"])
    acc.update(pred, target)
    keep = (target != 255).numpy()
    p, t = pred.numpy() == 1, target.numpy() == 1
    expected = [2 * (p[:, c] & t[:, c] & keep[:, c]).sum()
                / ((p[:, c] & keep[:, c]).sum() + (t[:, c] & keep[:, c]).sum()) for c in range(3)]
    np.testing.assert_allclose(acc.compute().per_class, expected, rtol=1e-6)


@pytest.mark.parametrize("mode", [Mode.MULTICLASS, Mode.MULTILABEL])
@pytest.mark.parametrize("name", [n.value for n in LossName])
def test_losses_ignore_255(name: str, mode: Mode) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 3, 8, 8, generator=g, requires_grad=True)
    if mode is Mode.MULTICLASS:
        target = torch.randint(0, 3, (2, 8, 8), generator=g)
        target[:, :3] = 255
    else:
        target = torch.randint(0, 2, (2, 3, 8, 8), generator=g).float()
        target[..., :3, :] = 255
    loss = build_loss(name, mode)
    value = loss(logits, target)
    value.backward()
    assert torch.isfinite(value)
    assert logits.grad is not None and float(logits.grad[:, :, :3].abs().sum()) == 0.0
    changed = logits.detach().clone()
    changed[:, :, :3] = torch.randn(2, 3, 3, 8, generator=g) * 5
    assert float(loss(changed, target)) == pytest.approx(float(value.detach()), rel=1e-5)


def test_tta_parse() -> None:
    tta = TTA.parse("hflip,vflip,rot90,scale:0.75,1,1.25")
    assert tta.views == ("identity", "hflip", "vflip", "rot90", "rot180", "rot270")
    assert tta.scales == (0.75, 1.0, 1.25) and len(tta) == 18
    assert TTA.parse(None) == TTA()
    with pytest.raises(ValueError, match="unknown TTA view"):
        TTA.parse("hflop")


def test_batched_tta_equals_one_pass_per_view_and_inverts_each_view() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(8, 4, 3, padding=1)).eval()
    x = torch.randn(2, 3, 64, 64)
    tta = TTA.parse("hflip,vflip,rot90,scale:0.5,1")
    with torch.inference_mode():
        batched = predict_probs(model, x, Mode.MULTICLASS, tta)
        per_view = predict_probs(model, x, Mode.MULTICLASS, tta, max_batch=2)
        # a pointwise model commutes with every flip and rotation: all views at scale 1 give the plain output
        pointwise = torch.nn.Conv2d(3, 4, 1).eval()
        plain = predict_probs(pointwise, x, Mode.MULTILABEL)
        views = predict_probs(pointwise, x, Mode.MULTILABEL, TTA.parse("hflip,vflip,rot90"))
    torch.testing.assert_close(batched, per_view, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(views, plain, atol=1e-6, rtol=1e-6)
    assert batched.shape == (2, 4, 64, 64)
    torch.testing.assert_close(batched.sum(dim=1), torch.ones(2, 64, 64))


def test_threshold_search_matches_brute_force() -> None:
    g = torch.Generator().manual_seed(0)
    probs = torch.rand(2, 30, 40, generator=g)
    target = (torch.rand(2, 30, 40, generator=g) < probs ** 2).long()
    target[:, :4] = 255
    search = ThresholdSearch(["a", "b"])
    search.update(probs, target)
    thresholds, dice = search.best()
    for c in range(2):
        keep, truth = target[c] != 255, target[c] == 1
        best = max(
            (2 * ((probs[c] >= k / 100) & truth & keep).sum().item()
             / (((probs[c] >= k / 100) & keep).sum().item() + (truth & keep).sum().item()), k / 100)
            for k in range(5, 96))
        assert dice[c] == pytest.approx(best[0])
        assert thresholds[c] == pytest.approx(best[1])
    assert parse_thresholds("0.3", ["a", "b"]) == (0.3, 0.3)
    with pytest.raises(InvalidDatasetError, match="2 classes"):
        parse_thresholds("0.3,0.4,0.5", ["a", "b"])


def test_average_states_and_refusal() -> None:
    a = {"w": torch.tensor([1.0, 3.0]), "n": torch.tensor(5)}
    b = {"w": torch.tensor([3.0, 5.0]), "n": torch.tensor(7)}
    out = average_states([a, b])
    torch.testing.assert_close(out["w"], torch.tensor([2.0, 4.0]))
    assert int(out["n"]) == 5  # integer buffers come from the first member
    with pytest.raises(InvalidDatasetError, match="one architecture"):
        average_states([a, {"w": torch.zeros(3), "n": torch.tensor(1)}])


def test_config_checks_and_round_trip() -> None:
    cfg = TrainConfig(encoder="resnet18", loss="focal+dice", optimizer="sgd", size=256)
    assert cfg.loss is LossName.FOCAL_DICE
    assert TrainConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="multiple of 32"):
        TrainConfig(size=100)
    with pytest.raises(ValueError, match="loss must be one of"):
        TrainConfig(loss="hinge")
    with pytest.raises(ValueError, match="unknown overlap policy"):
        TrainConfig(overlap="biggest")


def test_imagenet_without_network_fails_at_once_with_the_fix(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import time

    from datatools_train import weights

    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))  # an empty cache: nothing to fall back on
    import huggingface_hub.constants as hub

    monkeypatch.setattr(hub, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(weights, "_hub_reachable", lambda timeout=3.0: False)
    start = time.perf_counter()
    with pytest.raises(weights.WeightsUnavailableError, match="--weights PATH") as info:
        weights.build_model("Unet", "resnet18", 3, "imagenet")
    assert time.perf_counter() - start < 10
    assert "\n" not in str(info.value) and "--weights none" in str(info.value)
    with pytest.raises(DatatoolsError, match="resnet18"):
        weights.build_model("Unet", "resnet18", 3, "instagram")  # smp's list of valid weights names


def test_weights_file_whole_model_or_encoder(tmp_path) -> None:
    from datatools_train.weights import build_model

    torch.manual_seed(0)
    source = build_model("FPN", "resnet18", 3, "none")
    torch.save(source.state_dict(), tmp_path / "model.pt")
    torch.save({**source.encoder.state_dict(), "fc.weight": torch.zeros(10, 512), "fc.bias": torch.zeros(10)},
               tmp_path / "encoder.pth")
    whole = build_model("FPN", "resnet18", 3, str(tmp_path / "model.pt"))
    enc = build_model("Unet", "resnet18", 5, str(tmp_path / "encoder.pth"))
    for k, v in source.state_dict().items():
        torch.testing.assert_close(whole.state_dict()[k], v)
    for k, v in source.encoder.state_dict().items():
        torch.testing.assert_close(enc.encoder.state_dict()[k], v)
    with pytest.raises(DatatoolsError, match="fit neither"):
        build_model("Unet", "resnet34", 3, str(tmp_path / "encoder.pth"))


def test_lr_schedules_warm_up_then_decay_to_zero() -> None:
    from datatools_train.schedule import lr_lambda as _lr_lambda

    cosine = _lr_lambda(TrainConfig(warmup=0.1, scheduler="cosine"), 100)
    assert [cosine(s) for s in (0, 4, 9)] == pytest.approx([0.1, 0.5, 1.0])
    assert cosine(10) == 1.0 and cosine(55) == pytest.approx(0.5) and cosine(100) == pytest.approx(0.0)
    poly = _lr_lambda(TrainConfig(warmup=0.0, scheduler="poly"), 100)
    assert poly(0) == 1.0 and poly(50) == pytest.approx(0.5 ** 0.9) and poly(100) == 0.0

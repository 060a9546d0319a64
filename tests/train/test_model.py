from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from datatools_train import create_model  # noqa: E402


@pytest.mark.train
def test_create_model_gives_one_logit_per_class_and_pixel() -> None:
    model = create_model("Unet", "resnet18", classes=6).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 3, 64, 96))
    assert tuple(out.shape) == (2, 6, 64, 96)

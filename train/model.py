"""Model factory: segmentation_models_pytorch, nothing of our own."""

from __future__ import annotations

from typing import Any


def create_model(arch: str, encoder: str, classes: int, weights: str | None = None, **kwargs: Any) -> Any:
    """Build an smp model.

    Args:
        arch: smp architecture name (``Unet``, ``UnetPlusPlus``, ``DeepLabV3Plus``, ``FPN``, ``Segformer``, ...).
        encoder: smp encoder name (``resnet34``, ``efficientnet-b0``, ...).
        classes: output channels (background included for multiclass).
        weights: ``None`` for random initialisation, or an smp weights name such as ``"imagenet"`` (needs a
            download or a local cache).

    Example:
        >>> model = create_model("Unet", "resnet18", classes=5)
    """
    import segmentation_models_pytorch as smp

    return smp.create_model(arch, encoder_name=encoder, encoder_weights=weights, classes=classes, **kwargs)

"""Start a new model from the class frequencies of its training set (the bias of its last layer).

A randomly initialised head predicts every class about equally, whatever the data. On a segmentation set where
background is 90% of the pixels, the first hundreds of steps only teach the model that prior; a short run ends
before that (the demo's two epochs predicted almost no background: background IoU 0.007). With the head's bias set
to the log of each class's pixel share, the model predicts the prior from its first step (background where it
dominates, never a class without pixels, like an empty placeholder category) and every step goes into learning
where the objects are. The same initialisation as the focal-loss paper's prior (Lin et al. 2017, section 4.1).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from pycocotools import mask as mask_utils

from datatools.core.dataset import Dataset
from datatools.core.masks import annotation_to_rle

from .config import Mode

__all__ = ["class_prior", "init_head_bias"]

#: Smallest share a class is given: a class without pixels gets a logit about 9 below one that has them all.
FLOOR = 1e-4


def class_prior(datasets: Sequence[Dataset]) -> list[float]:
    """Share of the pixels of each category (in ``categories`` order) over the images of ``datasets``.

    The area of each annotation is measured from its segmentation (RLE, as pycocotools counts it), not taken from
    its ``area`` field; overlapping annotations are counted once each (a prior need not be exact).

    Example:
        >>> class_prior([Dataset.load("train.json", "images/")])
        [0.012, 0.0031, ...]
    """
    first = datasets[0]
    index = {int(c["id"]): k for k, c in enumerate(first.categories)}
    pixels = [0.0] * len(index)
    total = 0.0
    for ds in datasets:
        for img in ds.images:
            h, w = int(img["height"]), int(img["width"])
            total += h * w
            for ann in ds.annotations_of(img["id"]):
                k = index.get(int(ann["category_id"]))
                if k is not None and ann.get("segmentation"):
                    pixels[k] += float(mask_utils.area(annotation_to_rle(ann["segmentation"], h, w)))
    return [p / total if total else 0.0 for p in pixels]


def init_head_bias(model: Any, prior: Sequence[float], mode: Mode) -> bool:
    """Set the bias of the model's last convolution to the class prior; False when the model has no such layer.

    Multiclass: logits ``log(share)`` for background (what the classes leave) and each class, so the softmax
    starts at the prior. Multilabel: ``log(p / (1 - p))`` per class plane, so each sigmoid starts at its share.
    Shares are clipped to ``[FLOOR, 1 - FLOOR]``.
    """
    import torch

    fg = [min(max(p, FLOOR), 1 - FLOOR) for p in prior]
    if mode is Mode.MULTILABEL:
        logits = [math.log(p / (1 - p)) for p in fg]
    else:
        background = min(max(1.0 - sum(prior), FLOOR), 1 - FLOOR)
        logits = [math.log(p) for p in (background, *fg)]
    head = getattr(model, "segmentation_head", None)
    convs = [m for m in head.modules() if isinstance(m, torch.nn.Conv2d)] if head is not None else []
    if not convs or convs[-1].bias is None or convs[-1].out_channels != len(logits):
        return False
    with torch.no_grad():
        convs[-1].bias.copy_(torch.tensor(logits, dtype=convs[-1].bias.dtype))
    return True

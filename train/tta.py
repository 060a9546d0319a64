"""Test-time augmentation: flips, 90-degree rotations and scales, batched into as few forward passes as fit.

All geometric views of a batch at one scale go through the model in one forward pass (chunked only when
``max_batch`` says so, or when CUDA runs out of memory); each output is mapped back and the probabilities are
averaged. A mirrored view of a model trained with lateral class pairs (``left_lung``/``right_lung``) has its paired
channels swapped back before averaging (the checkpoint's ``ModelSpec.channel_swaps``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .config import Mode

__all__ = ["TTA", "normalize", "predict_probs"]

_VIEWS = ("identity", "hflip", "vflip", "rot90", "rot180", "rot270")


@dataclass(frozen=True)
class TTA:
    """Geometric views times scales; ``TTA()`` is a single plain pass.

    Attributes:
        views: from ``identity``, ``hflip``, ``vflip``, ``rot90``, ``rot180``, ``rot270``.
        scales: input scale factors (1.0: the model's size).
    """

    views: tuple[str, ...] = ("identity",)
    scales: tuple[float, ...] = (1.0,)

    def __post_init__(self) -> None:
        unknown = [v for v in self.views if v not in _VIEWS]
        if unknown or not self.views or not self.scales or min(self.scales) <= 0:
            raise ValueError(f"bad TTA views {self.views} or scales {self.scales}; views are {', '.join(_VIEWS)}")

    @classmethod
    def parse(cls, spec: str | None) -> TTA:
        """Parse ``hflip,vflip,rot90,scale:0.75,1,1.25`` (``rot90`` adds the 90, 180 and 270 degree views).

        Example:
            >>> TTA.parse("hflip,scale:0.75,1").views, TTA.parse("hflip,scale:0.75,1").scales
            (('identity', 'hflip'), (0.75, 1.0))
        """
        views, scales = ["identity"], []
        in_scales = False
        for token in (t.strip() for t in (spec or "").split(",")):
            if not token or token in ("none", "identity"):
                continue
            if token.startswith("scale:"):
                in_scales, token = True, token[len("scale:"):]
            if in_scales:
                try:
                    scales.append(float(token))
                except ValueError:
                    raise ValueError(f"TTA scale {token!r} is not a number (write scale:0.75,1,1.25 last)") from None
                continue
            added = ["rot90", "rot180", "rot270"] if token == "rot90" else [token]
            if any(v not in _VIEWS for v in added):
                raise ValueError(f"unknown TTA view {token!r}; use hflip, vflip, rot90, scale:S,S,...")
            views += [v for v in added if v not in views]
        return cls(tuple(views), tuple(scales) or (1.0,))

    def __len__(self) -> int:
        return len(self.views) * len(self.scales)


def _apply(x: Any, view: str, inverse: bool = False) -> Any:
    import torch

    if view == "hflip":
        return torch.flip(x, dims=(3,))
    if view == "vflip":
        return torch.flip(x, dims=(2,))
    if view.startswith("rot"):
        k = int(view[3:]) // 90
        return torch.rot90(x, k=-k if inverse else k, dims=(2, 3))
    return x


def normalize(images: Any, mean: Any, std: Any, dtype: Any = None) -> Any:
    """uint8 (N, 3, H, W) -> float, scaled to 0..1 then standardised per channel."""
    import torch

    m = torch.as_tensor(mean, device=images.device).view(1, -1, 1, 1)
    s = torch.as_tensor(std, device=images.device).view(1, -1, 1, 1)
    out = (images.float() / 255.0 - m) / s
    return out if dtype is None else out.to(dtype)


def _forward_chunks(model: Callable[[Any], Any], x: Any, max_batch: int | None) -> Any:
    import torch

    n = x.shape[0]
    step = n if max_batch is None else max(1, max_batch)
    while True:
        try:
            return torch.cat([model(x[i:i + step]).float() for i in range(0, n, step)])
        except torch.cuda.OutOfMemoryError:
            if step == 1:
                raise
            torch.cuda.empty_cache()
            step = max(1, step // 2)


def predict_probs(model: Callable[[Any], Any], x: Any, mode: Mode, tta: TTA | None = None, *,
                  max_batch: int | None = None, channel_swaps: Mapping[str, Sequence[int]] | None = None) -> Any:
    """Mean probabilities over the TTA views, (N, C, H, W) float32 at the size of ``x``.

    Args:
        model: logits (N, C, h, w) from a normalised batch; h, w a multiple of 32.
        x: normalised (N, 3, H, W) batch.
        mode: softmax (multiclass) or sigmoid (multilabel) before averaging.
        tta: the views (default: one plain pass).
        max_batch: most images per forward pass; None puts all views of one scale in one pass. ``max_batch=N``
            is one pass per view.
        channel_swaps: view -> output-channel order of a mirrored view (its lateral pairs swapped back), as
            ``ModelSpec.channel_swaps`` gives it; views not in it keep their channels.

    Example:
        >>> probs = predict_probs(model, normalize(batch, mean, std), Mode.MULTICLASS, TTA.parse("hflip,vflip"))
    """
    import torch
    import torch.nn.functional as F

    tta = tta or TTA()
    n, _, h, w = x.shape
    total = None
    for scale in tta.scales:
        xs = x
        if scale != 1.0:
            size = (max(32, round(h * scale / 32) * 32), max(32, round(w * scale / 32) * 32))
            xs = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
        views = [_apply(xs, v) for v in tta.views]
        logits = _forward_chunks(model, torch.cat(views) if len(views) > 1 else views[0], max_batch)
        for k, view in enumerate(tta.views):
            out = _apply(logits[k * n:(k + 1) * n], view, inverse=True)
            if channel_swaps and view in channel_swaps:
                out = out[:, list(channel_swaps[view])]
            if out.shape[-2:] != (h, w):
                out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)
            probs = out.sigmoid() if mode is Mode.MULTILABEL else out.softmax(dim=1)
            total = probs if total is None else total + probs
    assert total is not None
    return total / len(tta)

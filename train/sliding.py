"""``--sliding-window TILE[,STRIDE]``: predict a large image at full resolution, tile by tile.

Tiles of ``TILE x TILE`` pixels start every ``STRIDE`` pixels (default ``TILE // 2``) along each axis, the last one
flush with the image's edge; an image smaller than a tile is padded with zeros on its bottom and right. Tiles go to
the models in batches of ``tile_batch`` (each with all its TTA views, through :meth:`Ensemble.batch_probs`), and their
probabilities are blended into the image with per-pixel weights, Gaussian (sigma ``TILE / 8``, as nnU-Net) or
uniform: ``probs = sum(w * p_tile) / sum(w)``. Only one batch of tiles is on the device at a time, and the
accumulators hold one row of tiles: finished rows go out as bands (:meth:`SlidingWindow.bands`), so a caller that
keeps only the mask (``predict``) needs memory for a tile batch and a band, not for the image's probabilities.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

__all__ = ["BLENDS", "BandResize", "Blend", "SlidingWindow"]

class Blend(str, Enum):
    """Per-pixel weights of a tile when tiles are blended."""

    GAUSSIAN = "gaussian"
    UNIFORM = "uniform"


#: the blend names (the values of :class:`Blend`)
BLENDS = tuple(b.value for b in Blend)


@dataclass(frozen=True)
class SlidingWindow:
    """Tile side, stride and blending of a sliding-window prediction.

    Example:
        >>> SlidingWindow.parse("512,384").starts(1000)
        [0, 384, 488]
    """

    tile: int
    stride: int
    blend: str = "gaussian"
    tile_batch: int = 4

    def __post_init__(self) -> None:
        object.__setattr__(self, "blend", Blend(self.blend).value if self.blend in BLENDS else self.blend)
        if self.tile < 32 or self.tile % 32:
            raise ValueError(f"the tile side must be a positive multiple of 32, got {self.tile}")
        if not 0 < self.stride <= self.tile:
            raise ValueError(f"the stride must lie in 1..{self.tile} (the tile), got {self.stride}")
        if self.blend not in BLENDS:
            raise ValueError(f"blend must be gaussian or uniform, got {self.blend!r}")
        if self.tile_batch < 1:
            raise ValueError(f"tile_batch must be >= 1, got {self.tile_batch}")

    @classmethod
    def parse(cls, text: str, blend: str | Blend = "gaussian", tile_batch: int = 4) -> SlidingWindow:
        """``TILE`` or ``TILE,STRIDE``.

        Raises:
            ValueError: not one or two integers, or values :meth:`__post_init__` refuses.
        """
        try:
            parts = [int(v) for v in text.split(",")]
        except ValueError:
            raise ValueError(f"expected TILE or TILE,STRIDE (pixels), got {text!r}") from None
        if len(parts) not in (1, 2):
            raise ValueError(f"expected TILE or TILE,STRIDE (pixels), got {text!r}")
        return cls(parts[0], parts[1] if len(parts) == 2 else max(1, parts[0] // 2), Blend(blend).value, tile_batch)

    def starts(self, length: int) -> list[int]:
        """Tile origins along an axis of ``length`` pixels (one at 0 when the axis is no longer than a tile)."""
        if length <= self.tile:
            return [0]
        starts = list(range(0, length - self.tile + 1, self.stride))
        if starts[-1] != length - self.tile:
            starts.append(length - self.tile)
        return starts

    def weights(self, device: Any = "cpu") -> Any:
        """(TILE, TILE) float32 blending weights, 1 at the centre (all 1 when uniform)."""
        import torch

        if self.blend == "uniform":
            return torch.ones(self.tile, self.tile, device=device)
        r = torch.arange(self.tile, dtype=torch.float64, device=device) - (self.tile - 1) / 2
        g = torch.exp(-0.5 * (r / (self.tile / 8)) ** 2)
        w = torch.outer(g, g)
        return (w / w.max()).clamp_min(1e-3).float()

    def probs(self, image: Any, tile_probs: Callable[[Any], Any]) -> Any:
        """Blended (C, H, W) probabilities of one (3, H, W) uint8 image (:meth:`bands` put together).

        Args:
            image: the image on the inference device.
            tile_probs: (n, 3, TILE, TILE) uint8 tiles -> (n, C, TILE, TILE) probabilities.
        """
        import torch

        return torch.cat([band for _, band in self.bands(image, tile_probs)], dim=1)

    def bands(self, image: Any, tile_probs: Callable[[Any], Any]) -> Iterator[tuple[int, Any]]:
        """The blended probabilities of one (3, H, W) uint8 image as ``(first row, (C, rows, W))`` bands, top to
        bottom, each given as soon as no later tile covers it.

        Tiles go through ``tile_probs`` in batches, row of tiles after row of tiles; the accumulators hold one row
        of tiles (C x TILE x W), so memory is bounded by a tile batch and a band, not by the image. The sums are
        those of a whole-image accumulator (the same tiles added in the same order).
        """
        import torch
        import torch.nn.functional as F

        _, h, w = image.shape
        ph, pw = max(h, self.tile), max(w, self.tile)
        if (ph, pw) != (h, w):
            image = F.pad(image, (0, pw - w, 0, ph - h))
        origins = [(y, x) for y in self.starts(ph) for x in self.starts(pw)]
        weight = self.weights(image.device)
        total: Any = None
        norm: Any = None
        t, base = self.tile, 0  # total[:, 0] is row ``base`` of the (padded) image

        def finished(rows: int) -> tuple[int, Any]:
            return base, (total[:, :rows, :w] / norm[:rows, :w])[:, :max(0, min(rows, h - base))]

        for k in range(0, len(origins), self.tile_batch):
            chunk = origins[k:k + self.tile_batch]
            probs = tile_probs(torch_stack([image[:, y:y + t, x:x + t] for y, x in chunk]))
            if total is None:
                total = probs.new_zeros((probs.shape[1], t, pw))
                norm = probs.new_zeros((t, pw))
            for (y, x), p in zip(chunk, probs, strict=True):
                if y != base:  # a new row of tiles: the rows above it are final
                    d = y - base
                    if base < h:
                        yield finished(d)
                    total = torch.cat([total[:, d:], total.new_zeros((total.shape[0], d, pw))], dim=1)
                    norm = torch.cat([norm[d:], norm.new_zeros((d, pw))], dim=0)
                    base = y
                total[:, :, x:x + t] += p * weight
                norm[:, x:x + t] += weight
        assert total is not None and norm is not None
        if base < h:
            yield finished(t)


class BandResize:
    """``F.interpolate(probs[None], (S, S), mode="bilinear", align_corners=False)[0]`` of (C, H, W) probabilities
    that arrive as row bands (:meth:`SlidingWindow.bands`), keeping only the source rows the output reads (two per
    output row), each already resized along its width.

    Example:
        >>> resize = BandResize(4096, 4096, 512)
        >>> for first, band in window.bands(image, tile_probs):
        ...     resize.add(first, band)
        >>> small = resize.result()
    """

    def __init__(self, height: int, width: int, size: int) -> None:
        import numpy as np

        src = np.maximum((np.arange(size) + 0.5) * (height / size) - 0.5, 0.0)
        self.top = src.astype(np.int64)
        self.bottom = self.top + (self.top < height - 1)
        self.share = src - self.top  # of the bottom row
        self.needed = np.unique(np.concatenate([self.top, self.bottom]))
        self.size = size
        self.rows: dict[int, Any] = {}

    def add(self, first: int, band: Any) -> None:
        """Rows ``first .. first + len`` of the probabilities, (C, rows, W)."""
        import numpy as np
        import torch.nn.functional as F

        lo, hi = np.searchsorted(self.needed, [first, first + band.shape[1]])
        wanted = self.needed[lo:hi]
        if not len(wanted):
            return
        rows = band[:, (wanted - first).tolist()]
        narrow = F.interpolate(rows[None], size=(len(wanted), self.size), mode="bilinear", align_corners=False)[0]
        self.rows.update(zip(wanted.tolist(), narrow.unbind(1), strict=True))

    def result(self) -> Any:
        """(C, S, S) probabilities."""
        import torch

        top = torch.stack([self.rows[int(r)] for r in self.top], dim=1)
        bottom = torch.stack([self.rows[int(r)] for r in self.bottom], dim=1)
        share = torch.as_tensor(self.share, dtype=top.dtype, device=top.device).view(1, -1, 1)
        return top * (1 - share) + bottom * share


def torch_stack(tiles: list[Any]) -> Any:
    """``torch.stack`` (imported here so this module imports no torch at load time)."""
    import torch

    return torch.stack(tiles)

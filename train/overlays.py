"""``predict --overlays``: one picture per image, the image beside its prediction painted over it, with a legend.

``overlays/<file_name stem>.png`` (lossless)::

    +----------------+----------------+
    | image          | image + mask   |     each half the image, its longer side cut to MAX_SIDE px (INTER_AREA;
    |                |                |     the mask INTER_NEAREST); smaller images keep their size
    +----------------+----------------+
    | legend: colour swatch + name ... |    white strip, every class of the model, wrapped to the picture's width
    +---------------------------------+

The right half is the eda gallery's drawer (:func:`datatools.eda.gallery.paint_mask`): a pixel of class value
``v`` is ``cv2.addWeighted(image, 0.55, colour[v], 0.45, 0)``, each class outlined 2 px in its colour; background
pixels away from the outlines are the image's. Colours are those of ``classes.json`` (the palette of the mask PNGs).
Multilabel: where planes overlap, the plane of the highest class value shows. Names are the classes' display names
(:func:`datatools.core.classes.display_names`: a name shared by two classes gets its id), drawn as they are (``$``
and a leading ``_`` included) and cut with an ellipsis where they would not fit the picture.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.classes import ClassMap

__all__ = ["MAX_SIDE", "legend_entries", "overlay_picture"]

#: the longer side of each half of an overlay picture, at most
MAX_SIDE = 1024
_SWATCH, _PAD, _FONT_SIZE = 14, 6, 13


def legend_entries(class_map: ClassMap) -> list[tuple[str, tuple[int, int, int]]]:
    """``(display name, RGB colour)`` of every class, in value order."""
    palette = class_map.palette()
    return [(name, tuple(int(v) for v in palette[c.value]))  # type: ignore[misc]
            for name, c in zip(class_map.display_names(), class_map.classes, strict=True)]


@lru_cache(maxsize=1)
def _font() -> Any:
    """DejaVu Sans from matplotlib's data (wide Unicode cover), else Pillow's default font."""
    from PIL import ImageFont

    try:
        import matplotlib

        return ImageFont.truetype(f"{matplotlib.get_data_path()}/fonts/ttf/DejaVuSans.ttf", _FONT_SIZE)
    except (ImportError, OSError):  # pragma: no cover - matplotlib ships with datatools
        return ImageFont.load_default()


def _fit(text: str, room: float, draw: Any) -> str:
    """``text``, cut with an ellipsis until it is at most ``room`` pixels wide."""
    if draw.textlength(text, font=_font()) <= room:
        return text
    while text and draw.textlength(text + "\u2026", font=_font()) > room:
        text = text[:-1]
    return text + "\u2026"


def _legend(entries: list[tuple[str, tuple[int, int, int]]], width: int) -> npt.NDArray[np.uint8]:
    """A white (h, width, 3) strip: a swatch and a name per entry, left to right, wrapped."""
    from PIL import Image, ImageDraw

    line = _SWATCH + _PAD
    probe = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    room = max(1, width - 2 * _PAD - _SWATCH - 4)
    placed: list[tuple[int, int, str, tuple[int, int, int]]] = []
    x = y = _PAD
    for name, colour in entries:
        text = _fit(name, room, probe)
        span = _SWATCH + 4 + int(np.ceil(probe.textlength(text, font=_font()))) + 2 * _PAD
        if x > _PAD and x + span > width:
            x, y = _PAD, y + line
        placed.append((x, y, text, colour))
        x += span
    strip = Image.new("RGB", (width, y + line + _PAD), "white")
    draw = ImageDraw.Draw(strip)
    for x, y, text, colour in placed:
        draw.rectangle([x, y, x + _SWATCH - 1, y + _SWATCH - 1], fill=colour, outline=(0, 0, 0))
        draw.text((x + _SWATCH + 4, y + _SWATCH // 2), text, fill=(0, 0, 0), font=_font(), anchor="lm")
    return np.asarray(strip, dtype=np.uint8)


def _semantic(mask: npt.NDArray[Any]) -> npt.NDArray[np.uint8]:
    """(H, W) class values of a multiclass mask, or of (K, H, W) planes: the highest positive plane's value."""
    if mask.ndim == 2:
        return mask.astype(np.uint8)
    values = np.arange(1, mask.shape[0] + 1, dtype=np.uint8).reshape(-1, 1, 1)
    return (mask.astype(bool) * values).max(axis=0).astype(np.uint8)


def overlay_picture(image: npt.NDArray[np.uint8], mask: npt.NDArray[Any], palette: npt.NDArray[np.uint8],
                    entries: list[tuple[str, tuple[int, int, int]]]) -> npt.NDArray[np.uint8]:
    """The (H', 2 W' + legend) RGB picture of one image and its predicted mask (see the module docstring).

    Args:
        image: (H, W, 3) RGB uint8.
        mask: (H, W) class values, or (K, H, W) multilabel planes.
        palette: (256, 3) colours indexed by class value.
        entries: the legend, :func:`legend_entries`.

    Example:
        >>> cm = ens.spec.class_map()
        >>> pic = overlay_picture(read_image("a.jpg"), pred.mask, cm.palette(), legend_entries(cm))
    """
    import cv2

    from datatools.eda.gallery import paint_mask

    semantic = _semantic(mask)
    h, w = semantic.shape
    if max(h, w) > MAX_SIDE:
        scale = MAX_SIDE / max(h, w)
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = np.asarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA), dtype=np.uint8)
        semantic = np.asarray(cv2.resize(semantic, size, interpolation=cv2.INTER_NEAREST), dtype=np.uint8)
    pair = np.hstack([image, paint_mask(image, semantic, palette)])
    return np.vstack([pair, _legend(entries, pair.shape[1])])

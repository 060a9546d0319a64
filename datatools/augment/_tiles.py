"""The tiling kernel shared by mosaic and RICAP: cut rectangles from several images into one canvas.

Each source is resized (only when its size differs from the one that covers the canvas) so that it covers the
output, then a crop of the cell's size is cut from it. Masks are cut with pure index operations (pixel-centre
aligned nearest neighbour), so every output label pixel is exactly a source label pixel.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import cv2
import numpy as np
import numpy.typing as npt

from datatools.augment.types import Box, BoxedObjects, ObjectRecord, Sample

__all__ = ["Tile", "TileParams", "apply_tiles", "cover_resize_hw", "cut_tiles", "nearest_indices", "sample_tile",
           "tile_windows"]


@dataclass(frozen=True)
class Tile:
    """One rectangle of the output and where its pixels come from.

    Attributes:
        source: index of the source in the samples list.
        cell_yxyx: ``(y0, x0, y1, x1)`` of the rectangle in the output (end exclusive).
        resize_hw: size the source is resized to before the crop (its own size: no resize).
        offset_yx: top-left corner of the crop in the resized source.
        source_hw: size of the source image.
    """

    source: int
    cell_yxyx: tuple[int, int, int, int]
    resize_hw: tuple[int, int]
    offset_yx: tuple[int, int]
    source_hw: tuple[int, int]

    def __post_init__(self) -> None:
        y0, x0, y1, x1 = self.cell_yxyx
        if not (0 <= y0 < y1 and 0 <= x0 < x1):
            raise ValueError(f"tile cell must be a non-empty (y0, x0, y1, x1), got {self.cell_yxyx}")
        oy, ox = self.offset_yx
        if oy < 0 or ox < 0 or oy + y1 - y0 > self.resize_hw[0] or ox + x1 - x0 > self.resize_hw[1]:
            raise ValueError(f"tile crop at {self.offset_yx} of size {(y1 - y0, x1 - x0)} leaves the resized "
                             f"source of size {self.resize_hw}")


@dataclass(frozen=True)
class TileParams:
    """The whole cut: output size, tiles, and the smallest object area (pixels) kept after the cut."""

    size_hw: tuple[int, int]
    tiles: tuple[Tile, ...]
    min_area: int = 1


def cover_resize_hw(src_hw: tuple[int, int], out_hw: tuple[int, int]) -> tuple[int, int]:
    """The size a source is resized to so that it just covers the output (its own size when it already fits
    exactly in one dimension and covers the other).

    Example:
        >>> cover_resize_hw((480, 640), (640, 640))
        (640, 853)
    """
    (h, w), (oh, ow) = src_hw, out_hw
    scale = max(oh / h, ow / w)
    if scale == 1.0:
        return h, w
    return max(oh, round(h * scale)), max(ow, round(w * scale))


def nearest_indices(start: int, length: int, src: int, dst: int) -> npt.NDArray[np.intp]:
    """Source indices of destination pixels ``start .. start+length-1`` when ``src`` pixels are resized to
    ``dst`` by pixel-centre nearest neighbour: ``floor((i + 0.5) * src / dst)``, in integers so that centres
    falling exactly on a pixel edge always go the same way (OpenCV's fixed-point ``INTER_NEAREST_EXACT`` can
    differ there by one pixel).

    Example:
        >>> nearest_indices(0, 4, 2, 4).tolist()
        [0, 0, 1, 1]
    """
    i = np.arange(start, start + length, dtype=np.int64)
    return np.minimum((2 * i + 1) * src // (2 * dst), src - 1).astype(np.intp)


def sample_tile(rng: np.random.Generator, source: int, src_hw: tuple[int, int], out_hw: tuple[int, int],
                cell_yxyx: tuple[int, int, int, int]) -> Tile:
    """A tile with a uniformly random crop position inside the covering resize of the source."""
    rh, rw = cover_resize_hw(src_hw, out_hw)
    ch, cw = cell_yxyx[2] - cell_yxyx[0], cell_yxyx[3] - cell_yxyx[1]
    oy, ox = int(rng.integers(0, rh - ch + 1)), int(rng.integers(0, rw - cw + 1))
    return Tile(source, tuple(int(v) for v in cell_yxyx), (rh, rw), (oy, ox),  # type: ignore[arg-type]
                (int(src_hw[0]), int(src_hw[1])))


def tile_windows(params: TileParams) -> list[tuple[int, int, int, int] | None]:
    """Per source index, the box ``(y0, x0, y1, x1)`` of source pixels the tiles show (empty when not used).

    Example:
        >>> tile_windows(TileParams((4, 4), (Tile(0, (0, 0, 4, 2), (4, 4), (0, 1), (4, 4)),)))
        [(0, 1, 4, 3)]
    """
    windows: list[tuple[int, int, int, int] | None] = [None] * (max(t.source for t in params.tiles) + 1)
    for t in params.tiles:
        y0, x0, y1, x1 = t.cell_yxyx
        oy, ox = t.offset_yx
        win = (oy, ox, oy + y1 - y0, ox + x1 - x0)
        if t.source_hw != t.resize_hw:  # map the crop back through the resize
            rows = nearest_indices(oy, y1 - y0, t.source_hw[0], t.resize_hw[0])
            cols = nearest_indices(ox, x1 - x0, t.source_hw[1], t.resize_hw[1])
            win = (int(rows[0]), int(cols[0]), int(rows[-1]) + 1, int(cols[-1]) + 1)
        old = windows[t.source]
        windows[t.source] = win if old is None else (min(old[0], win[0]), min(old[1], win[1]),
                                                       max(old[2], win[2]), max(old[3], win[3]))
    return [(0, 0, 0, 0) if w is None else w for w in windows]


def _cut(image: npt.NDArray[np.uint8], objects: BoxedObjects, tile: Tile, min_area: int
         ) -> tuple[npt.NDArray[np.uint8], list[tuple[int, Box, npt.NDArray[np.bool_]]]]:
    """The tile's image crop, and ``(object, its box in the output cell, its pixels there)`` for every object
    keeping at least ``min_area`` pixels. Only each object's box is read (through the resize as well)."""
    y0, x0, y1, x1 = tile.cell_yxyx
    ch, cw = y1 - y0, x1 - x0
    oy, ox = tile.offset_yx
    (h, w), (rh, rw) = image.shape[:2], tile.resize_hw
    if (h, w) != tile.source_hw:
        raise ValueError(f"tile expects a source of size {tile.source_hw}, got {(h, w)}")
    resized = (rh, rw) != (h, w)
    # source row / column of every cell pixel (the identity shifted by the offset when there is no resize)
    rows = nearest_indices(oy, ch, h, rh) if resized else None
    cols = nearest_indices(ox, cw, w, rw) if resized else None
    kept = []
    for k, (box, crop) in enumerate(zip(objects.boxes_yxyx, objects.crops, strict=True)):
        if box is None or crop is None:
            continue
        if rows is None or cols is None:
            iy0, ix0, iy1, ix1 = max(box[0], oy), max(box[1], ox), min(box[2], oy + ch), min(box[3], ox + cw)
            if iy0 >= iy1 or ix0 >= ix1:
                continue
            pixels = crop[iy0 - box[0]:iy1 - box[0], ix0 - box[1]:ix1 - box[1]]
            where = (iy0 - oy, ix0 - ox, iy1 - oy, ix1 - ox)
        else:  # the cell pixels whose source pixel lies in the box: a run of rows and a run of columns
            ry = np.flatnonzero((rows >= box[0]) & (rows < box[2]))
            rx = np.flatnonzero((cols >= box[1]) & (cols < box[3]))
            if not len(ry) or not len(rx):
                continue
            pixels = crop[np.ix_(rows[ry] - box[0], cols[rx] - box[1])]
            where = (int(ry[0]), int(rx[0]), int(ry[-1]) + 1, int(rx[-1]) + 1)
        if np.count_nonzero(pixels) >= min_area:
            kept.append((k, where, pixels))
    if not resized:
        return image[oy:oy + ch, ox:ox + cw], kept
    shrink = rh * rw < h * w
    image = cast("npt.NDArray[np.uint8]", cv2.resize(image, (rw, rh),
                                                     interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR))
    return image[oy:oy + ch, ox:ox + cw], kept


def _gaps(params: TileParams) -> bool:
    """Whether the cells leave part of the canvas uncovered (then it is black)."""
    return sum((y1 - y0) * (x1 - x0) for y0, x0, y1, x1 in (t.cell_yxyx for t in params.tiles)) \
        < params.size_hw[0] * params.size_hw[1]


def cut_tiles(images: Sequence[npt.NDArray[np.uint8]], objects: Sequence[BoxedObjects], params: TileParams
              ) -> tuple[npt.NDArray[np.uint8], BoxedObjects]:
    """Cut every tile into the canvas: the output image and its objects (each source's objects as
    :class:`BoxedObjects`); objects under ``min_area`` pixels after the cut are dropped.

    Example:
        >>> image, out = cut_tiles([a.image, b.image], [BoxedObjects.from_sample(a), BoxedObjects.from_sample(b)],
        ...                        params)
    """
    h, w = params.size_hw
    canvas = np.zeros((h, w, 3), dtype=np.uint8) if _gaps(params) else np.empty((h, w, 3), dtype=np.uint8)
    records: list[ObjectRecord] = []
    boxes: list[Box | None] = []  # where each object's pixels were put: they hold its mask
    crops: list[npt.NDArray[np.bool_] | None] = []
    for tile in params.tiles:
        y0, x0, y1, x1 = tile.cell_yxyx
        crop_image, kept = _cut(images[tile.source], objects[tile.source], tile, max(1, params.min_area))
        canvas[y0:y1, x0:x1] = crop_image
        for k, (by0, bx0, by1, bx1), pixels in kept:
            records.append(objects[tile.source].objects[k])
            boxes.append((y0 + by0, x0 + bx0, y0 + by1, x0 + bx1))
            crops.append(pixels)
    return canvas, BoxedObjects(tuple(records), tuple(boxes), tuple(crops))


def apply_tiles(samples: Sequence[Sample], params: TileParams) -> Sample:
    """:func:`cut_tiles` on samples: the output as a :class:`Sample`.

    Example:
        >>> out = apply_tiles([a, b], TileParams((4, 4), (Tile(0, (0, 0, 4, 2), (4, 4), (0, 0), (4, 4)),
        ...                                              Tile(1, (0, 2, 4, 4), (4, 4), (0, 2), (4, 4)))))
    """
    image, out = cut_tiles([s.image for s in samples], [BoxedObjects.from_sample(s) for s in samples], params)
    return Sample(image, out.to_masks(params.size_hw), out.objects, known_boxes_yxyx=out.boxes_yxyx)

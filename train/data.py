"""A torch Dataset over datatools datasets: images from the one reader, masks from the one rasteriser.

Masks are rasterised on first use and cached per image in the layout of ``datatools convert masks``
(``<cache>/ann_dir/<file_name stem>.png``, or ``.npz`` planes when multilabel), so a folder written by
``datatools convert masks`` can serve as a read-only source of pre-rendered masks.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.atomic import atomic_path, atomic_write_bytes
from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.imageio import encode_palette_png, read_image
from datatools.core.masks import rasterize_multilabel, rasterize_semantic, rle_to_mask
from datatools.formats.multilabel_npz import read_multilabel, write_multilabel

from .config import Mode

__all__ = ["MaskSource", "SegmentationData", "check_same_classes", "detect_mode", "load_mask", "source_keys",
           "without_leaks"]

#: Above this share of labelled pixels claimed by two or more classes, ``--mode auto`` picks multilabel.
MULTILABEL_OVERLAP = 0.01


def detect_mode(dataset: Dataset, max_images: int = 64) -> Mode:
    """Multilabel when annotations of different classes overlap heavily, else multiclass.

    Looks at up to ``max_images`` images spread over the dataset; the share of labelled pixels that two or more
    classes claim is compared with :data:`MULTILABEL_OVERLAP` (medical waste: 0.1%, hand bones: several %).

    Example:
        >>> detect_mode(Dataset.load("train.json", "images/"))
        <Mode.MULTICLASS: 'multiclass'>
    """
    class_map = dataset.class_map()
    annotated = [img for img in dataset.images if dataset.annotations_of(img["id"])]
    step = max(1, len(annotated) // max_images)
    shared = labelled = 0
    for img in annotated[::step][:max_images]:
        planes = rasterize_multilabel(dataset.annotations_of(img["id"]), img["height"], img["width"], class_map)
        count = planes.sum(axis=0, dtype=np.uint8)
        shared += int((count >= 2).sum())
        labelled += int((count >= 1).sum())
    return Mode.MULTILABEL if labelled and shared / labelled > MULTILABEL_OVERLAP else Mode.MULTICLASS


def check_same_classes(reference: Dataset, other: Dataset) -> None:
    """Refuse a dataset whose categories (ids and names, in order) differ from the reference's.

    Raises:
        InvalidDatasetError: names both files and the first difference.
    """
    ref = [(c["id"], c["name"]) for c in reference.categories]
    got = [(c["id"], c["name"]) for c in other.categories]
    if ref != got:
        raise InvalidDatasetError(f"{other.source}: categories {got} differ from those of {reference.source} "
                                  f"{ref}; every dataset of a run must share one class list")


@dataclass(frozen=True)
class MaskSource:
    """Where the masks of one dataset come from.

    Attributes:
        dataset: the records.
        cache: folder the rasterised masks are written to and read from (None: rasterise every time).
        prerendered: a ``datatools convert masks`` folder read first (never written).
    """

    dataset: Dataset
    cache: Path | None = None
    prerendered: Path | None = None


def cache_dir_for(root: str | os.PathLike[str], dataset: Dataset, mode: Mode, overlap: str) -> Path:
    """A cache folder under ``root`` keyed by the annotation file, the mode and the overlap policy."""
    key = f"{Path(str(dataset.source)).resolve()}|{len(dataset.images)}|{mode.value}|{overlap}"
    return Path(root) / hashlib.sha1(key.encode()).hexdigest()[:12]


def _mask_name(file_name: str, mode: Mode) -> str:
    return str(PurePosixPath(file_name).with_suffix(".npz" if mode is Mode.MULTILABEL else ".png"))


def _read_label_png(path: Path) -> npt.NDArray[np.uint8]:
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im, dtype=np.uint8)  # writable: torch.from_numpy warns on read-only arrays


def load_mask(source: MaskSource, image: dict[str, Any], mode: Mode, overlap: str,
              class_map: ClassMap) -> npt.NDArray[np.uint8]:
    """One image's target: (H, W) uint8 class values, or (H, W, K) uint8 0/1 planes when multilabel.

    Ignore regions (``images[].datatools.ignore``) are 255, in every plane when multilabel.
    """
    name = _mask_name(image["file_name"], mode)
    mask: Any
    for folder in (source.prerendered, source.cache):
        path = folder / "ann_dir" / name if folder is not None else None
        if path is not None and path.is_file():
            mask = read_multilabel(path) if mode is Mode.MULTILABEL else _read_label_png(path)
            break
    else:
        anns = source.dataset.annotations_of(image["id"])
        h, w = image["height"], image["width"]
        if mode is Mode.MULTILABEL:
            mask = rasterize_multilabel(anns, h, w, class_map)
        else:
            ignore = (image.get("datatools") or {}).get("ignore", [])
            mask = rasterize_semantic(anns, h, w, class_map, overlap, ignore=ignore)
        if source.cache is not None:  # atomic: two DataLoader workers may render the same file
            dst = source.cache / "ann_dir" / name
            dst.parent.mkdir(parents=True, exist_ok=True)
            if mode is Mode.MULTILABEL:
                with atomic_path(dst) as tmp:
                    write_multilabel(tmp, mask)
            else:
                atomic_write_bytes(dst, encode_palette_png(mask, class_map.palette()))
    if mode is Mode.MULTICLASS:
        return mask
    planes = np.ascontiguousarray(mask.transpose(1, 2, 0)).view(np.uint8)
    ignore_rles = (image.get("datatools") or {}).get("ignore", [])
    if ignore_rles:
        planes = planes.copy()
        for rle in ignore_rles:
            planes[rle_to_mask(rle)] = IGNORE_INDEX
    return planes


class SegmentationData:
    """Map-style dataset (torch ``Dataset`` protocol) over the images of one or more datatools datasets.

    Items are ``(image, target)``: image (3, S, S) uint8 tensor (normalised on the device, where it is cheap);
    target (S, S) int64 class values with 255 ignore, or (K, S, S) float32 planes (255 ignore) when multilabel.

    Example:
        >>> data = SegmentationData([MaskSource(ds)], Mode.MULTICLASS, build_transform(256, train=False))
        >>> image, target = data[0]
    """

    def __init__(self, sources: Sequence[MaskSource], mode: Mode, transform: Any, *,
                 overlap: str = "smaller-on-top", crop: Callable[..., Any] | None = None) -> None:
        if not sources:
            raise ValueError("at least one dataset is needed")
        self.sources = list(sources)
        self.mode = mode
        self.transform = transform
        self.overlap = overlap
        self.crop = crop  #: (image, mask, index) -> (image, mask) before the transform (:class:`train.crop.RandomCrop`)
        self.class_map = sources[0].dataset.class_map()
        self.items = [(k, img) for k, src in enumerate(self.sources) for img in src.dataset.images]

    def __len__(self) -> int:
        return len(self.items)

    def record(self, index: int) -> dict[str, Any]:
        """The image record of item ``index``."""
        return self.items[index][1]

    def raw(self, index: int) -> tuple[npt.NDArray[np.uint8], npt.NDArray[np.uint8]]:
        """Item ``index`` before the transform: (H, W, 3) RGB image and its mask as :func:`load_mask` gives it."""
        k, img = self.items[index]
        src = self.sources[k]
        image = read_image(src.dataset.image_path(img))
        if image.shape[:2] != (img["height"], img["width"]):
            raise InvalidDatasetError(f"{src.dataset.image_path(img)}: image is {image.shape[1]}x{image.shape[0]}, "
                                      f"the annotations say {img['width']}x{img['height']}")
        return image, load_mask(src, img, self.mode, self.overlap, self.class_map)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        import torch

        image, mask = self.raw(index)
        if self.crop is not None:
            image, mask = self.crop(image, mask, index)
        out = self.transform(image=image, mask=mask)
        x = torch.from_numpy(np.ascontiguousarray(out["image"].transpose(2, 0, 1)))
        if self.mode is Mode.MULTILABEL:
            y = torch.from_numpy(np.ascontiguousarray(out["mask"].transpose(2, 0, 1))).float()
        else:
            y = torch.from_numpy(np.ascontiguousarray(out["mask"])).long()
        return x, y


def seed_worker(worker_id: int) -> None:
    """DataLoader ``worker_init_fn``: give each worker's augmentations its own seed derived from torch's."""
    import torch

    info = torch.utils.data.get_worker_info()
    if info is None:
        return
    seed = int(torch.initial_seed() % 2**32)
    transform = getattr(info.dataset, "transform", None)
    if transform is not None and hasattr(transform, "set_random_seed"):
        transform.set_random_seed(seed)
    np.random.seed(seed)  # noqa: NPY002 - for third-party code that still draws from the global RNG


def source_keys(image: dict[str, Any]) -> set[str]:
    sources = (image.get("datatools") or {}).get("sources") or []
    keys: set[str] = set()
    for s in sources if isinstance(sources, list) else [sources]:
        if isinstance(s, dict):
            keys |= {f"id:{s[k]}" for k in ("image_id", "id") if k in s}
            keys |= {f"name:{s['file_name']}"} if "file_name" in s else set()
        else:
            keys.add(f"id:{s}" if isinstance(s, int) else f"name:{s}")
    return keys


def without_leaks(extra: Dataset, val: Dataset | None, log: Callable[[str], None]) -> Dataset:
    """Drop extra images derived (``images[].datatools.sources``) from a validation image."""
    if val is None:
        return extra
    held_out = {f"id:{i['id']}" for i in val.images} | {f"name:{i['file_name']}" for i in val.images}
    leaking = [img["id"] for img in extra.images if source_keys(img) & held_out]
    if leaking:
        log(f"warning: {extra.source}: {len(leaking)} image(s) derived from validation images left out of training")
        return extra.subset(i["id"] for i in extra.images if i["id"] not in set(leaking))
    return extra

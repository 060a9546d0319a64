"""Semantic mask folders in the mmsegmentation layout, written from and read back into COCO.

Layout written by :func:`coco_to_mask_dir`::

    out/
      img_dir/<file_name>            the images, copied byte for byte
      ann_dir/<file_name stem>.png   one single-channel PNG per image (values 0..K, 255 ignore): a palette PNG
                                     (``--mask-format palette``, the default) or a gray one (``gray``),
                                     or <stem>.npz with (K, H, W) bit-packed planes when multilabel
      classes.json                   [{"value", "category_id", "name", "color"}, ...], background first

Reading the masks: PIL (``np.asarray(Image.open(path))``) and mmsegmentation give the class values of both formats;
OpenCV gives the palette's colours for a palette PNG (even with ``cv2.IMREAD_UNCHANGED``) and the values only for a
gray one. Write ``--mask-format gray`` for tools that read masks with ``cv2.imread``.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt
from PIL import Image

from datatools.core.atomic import output_dir
from datatools.core.classes import IGNORE_INDEX, ClassMap
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.core.imageio import MaskFormat, encode_mask_png, find_images
from datatools.core.masks import Crowd, OverlapPolicy, mask_to_rle, rasterize_multilabel, rasterize_semantic
from datatools.core.parallel import parallel_map
from datatools.formats.multilabel_npz import read_multilabel, write_multilabel

__all__ = ["ANN_DIR", "CLASSES_FILE", "IMG_DIR", "MaskDirResult", "coco_to_mask_dir", "mask_dir_to_coco"]

IMG_DIR, ANN_DIR, CLASSES_FILE = "img_dir", "ann_dir", "classes.json"


@dataclass(frozen=True)
class MaskDirResult:
    """What :func:`coco_to_mask_dir` wrote."""

    out: Path
    images: int
    multilabel: bool


@dataclass(frozen=True)
class _RenderConfig:
    root: str
    out: str
    class_map: ClassMap
    policy: OverlapPolicy
    multilabel: bool
    crowd: Crowd
    copy_images: bool
    palette: npt.NDArray[np.uint8] = field(compare=False)  # built once: ClassMap.palette() costs ~1 ms a call
    mask_format: MaskFormat = MaskFormat.PALETTE


def _mask_name(file_name: str, multilabel: bool) -> str:
    return str(PurePosixPath(file_name).with_suffix(".npz" if multilabel else ".png"))


def _render_one(job: tuple[str, int, int, list[dict[str, Any]], list[dict[str, Any]]], cfg: _RenderConfig) -> str:
    file_name, height, width, anns, ignore = job
    out = Path(cfg.out)
    dst = out / ANN_DIR / _mask_name(file_name, cfg.multilabel)
    if dst.parent != out / ANN_DIR:
        dst.parent.mkdir(parents=True, exist_ok=True)
    if cfg.multilabel:
        write_multilabel(dst, rasterize_multilabel(anns, height, width, cfg.class_map))
    else:
        mask = rasterize_semantic(anns, height, width, cfg.class_map, cfg.policy, crowd=cfg.crowd, ignore=ignore)
        dst.write_bytes(encode_mask_png(mask, cfg.palette, cfg.mask_format))
    if cfg.copy_images:
        img_dst = out / IMG_DIR / file_name
        img_dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(Path(cfg.root) / file_name, img_dst)
    return file_name


def coco_to_mask_dir(
    dataset: Dataset,
    out: str | os.PathLike[str],
    *,
    overlap: str | OverlapPolicy = "smaller-on-top",
    multilabel: bool = False,
    crowd: str | Crowd = Crowd.CLASS,
    copy_images: bool = True,
    mask_format: MaskFormat | str = MaskFormat.PALETTE,
    overwrite: bool = False,
    workers: int | None = None,
    progress: bool = True,
) -> MaskDirResult:
    """Rasterise every image of a dataset into an mmsegmentation-style mask folder.

    Args:
        dataset: the source dataset.
        out: output folder; refused when it exists and is not empty, unless ``overwrite``.
        overlap: overlap policy for semantic masks (ignored with ``multilabel``).
        multilabel: write (K, H, W) planes as ``.npz`` instead of one class per pixel.
        crowd: ``"class"`` or ``"ignore"`` for ``iscrowd`` regions (see ``rasterize_semantic``).
        copy_images: also copy the images to ``img_dir/``.
        mask_format: ``palette`` (class colours in viewers; read the values with PIL) or ``gray`` (values for
            ``cv2.imread(path, cv2.IMREAD_UNCHANGED)`` too); see :class:`~datatools.core.imageio.MaskFormat`.
        overwrite: replace a non-empty ``out``.
        workers: processes (default: all cores).
        progress: show a progress bar.

    Returns:
        Where the folder is and how many images it holds.

    Example:
        >>> ds = Dataset.load("examples/medical_waste/valid/_annotations.coco.json", "examples/medical_waste/valid")
        >>> coco_to_mask_dir(ds, "out/masks").images > 0
        True
    """
    policy = OverlapPolicy.parse(overlap)
    mask_format = MaskFormat(mask_format)
    crowd = Crowd.parse(crowd)  # options fail before any work, never in the workers
    class_map = dataset.class_map()
    if not multilabel and policy.priority:
        class_map.values_by_name(policy.priority)  # unknown class names fail before anything is written
    names: dict[str, str] = {}
    for img in dataset.images:
        name = _mask_name(img["file_name"], multilabel)
        if name in names:
            raise InvalidDatasetError(f"{dataset.source}: images {names[name]!r} and {img['file_name']!r} would "
                                      f"both write the mask {name!r}")
        names[name] = img["file_name"]
        dataset.image_path(img)
    jobs = [
        (img["file_name"], img["height"], img["width"], dataset.annotations_of(img["id"]),
         (img.get("datatools") or {}).get("ignore", []))
        for img in dataset.images
    ]
    with output_dir(out, overwrite) as tmp:
        cfg = _RenderConfig(str(dataset.image_root), str(tmp), class_map, policy, multilabel, crowd, copy_images,
                            class_map.palette(), mask_format)
        (tmp / ANN_DIR).mkdir()
        parallel_map(partial(_render_one, cfg=cfg), jobs, workers=workers, desc="rasterising", progress=progress)
        class_map.save(tmp / CLASSES_FILE)
    return MaskDirResult(Path(out), len(jobs), multilabel)


def _read_label_png(path: Path) -> npt.NDArray[np.uint8]:
    try:
        with Image.open(path) as im:
            if im.mode not in ("P", "L"):
                raise InvalidDatasetError(f"{path}: mask PNG must be single-channel (palette or gray), got {im.mode}")
            return np.asarray(im, dtype=np.uint8)
    except (OSError, SyntaxError) as exc:
        raise UnreadableFileError(f"{path}: not a readable mask PNG ({exc})") from None


def _find_image(img_dir: Path, rel_stem: PurePosixPath, mask_path: Path) -> str:
    found = find_images(img_dir, str(rel_stem))
    if len(found) != 1:
        what = "no image" if not found else f"{len(found)} images"
        raise InvalidDatasetError(f"{mask_path}: {what} named {rel_stem}.* under {img_dir}")
    return found[0]


def mask_dir_to_coco(
    ann_dir: str | os.PathLike[str], img_dir: str | os.PathLike[str], classes: ClassMap
) -> dict[str, Any]:
    """Read a mask folder back into COCO: one RLE annotation per class present in each image.

    Pixels of value 255 become the image's ignore region (``images[].datatools.ignore``). ``.npz`` files
    (multilabel) give one annotation per non-empty plane.

    Raises:
        InvalidDatasetError: a mask holds a value that is not a class, or its image is missing.
    """
    ann_dir, img_dir = Path(ann_dir), Path(img_dir)
    files = sorted(p for p in ann_dir.rglob("*") if p.suffix in (".png", ".npz"))
    if not files:
        raise InvalidDatasetError(f"{ann_dir}: no mask files (.png or .npz) found")
    by_value = {c.value: c for c in classes.classes}
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    for image_id, path in enumerate(files, start=1):
        rel = PurePosixPath(path.relative_to(ann_dir).as_posix())
        file_name = _find_image(img_dir, rel.with_suffix(""), path)
        if path.suffix == ".npz":
            planes = read_multilabel(path)
            if planes.shape[0] != len(classes):
                raise InvalidDatasetError(f"{path}: {planes.shape[0]} planes, the classes file has {len(classes)}")
            parts = [(value, planes[value - 1]) for value in by_value if planes[value - 1].any()]
            height, width = planes.shape[1:]
            ignore = None
        else:
            mask = _read_label_png(path)
            height, width = mask.shape
            present = [int(v) for v in np.unique(mask)]
            unknown = [v for v in present if v not in by_value and v not in (0, IGNORE_INDEX)]
            if unknown:
                raise InvalidDatasetError(f"{path}: mask values {unknown} are not classes of the classes file")
            parts = [(v, mask == v) for v in present if v in by_value]
            ignore = mask == IGNORE_INDEX if IGNORE_INDEX in present else None
        image: dict[str, Any] = {"id": image_id, "file_name": file_name, "width": int(width), "height": int(height)}
        if ignore is not None:
            image["datatools"] = {"ignore": [mask_to_rle(ignore)]}
        images.append(image)
        for value, plane in parts:
            rle = mask_to_rle(plane)
            ys, xs = np.nonzero(plane)
            bbox = [int(xs.min()), int(ys.min()), int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1)]
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": by_value[value].category_id, "segmentation": rle,
                                "area": int(plane.sum()), "bbox": bbox, "iscrowd": 0})
    categories = [{"id": c.category_id, "name": c.name, "supercategory": ""} for c in classes.classes]
    return {"info": {"description": f"converted from the mask folder {ann_dir.name} by datatools"},
            "licenses": [], "images": images, "annotations": annotations, "categories": categories}

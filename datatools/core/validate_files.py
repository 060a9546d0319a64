"""Checks of the image files a COCO file points at: present, readable, the declared size, not a bomb."""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path
from typing import Any

from datatools.core.errors import UnreadableFileError
from datatools.core.imageio import MAX_IMAGE_PIXELS, check_image_file, decode_image_strict
from datatools.core.issues import Issue, Severity
from datatools.core.parallel import parallel_map
from datatools.core.paths import file_name_problem

__all__ = ["validate_files"]


def _check_one(job: tuple[int, Any, str, Any, Any], root: str, decode: bool, max_pixels: int) -> Issue | None:
    index, rid, file_name, width, height = job
    path = Path(root) / file_name
    if not path.is_file():
        return Issue(Severity.ERROR, "missing-image", f"image id {rid}: file not found under the image root",
                     str(path), "images", index, rid)
    try:
        w, h = (decode_image_strict if decode else check_image_file)(path, max_pixels)
    except UnreadableFileError as exc:
        code = "image-too-large" if "bomb" in str(exc) else "unreadable-image"
        message = str(exc).removeprefix(f"{path}: ")
        return Issue(Severity.ERROR, code, f"image id {rid}: {message}", str(path), "images", index, rid)
    declared = isinstance(width, int) and isinstance(height, int)  # otherwise the record check reports it
    if declared and (w, h) != (width, height):
        return Issue(Severity.ERROR, "image-size-mismatch", f"image id {rid}: file is {w}x{h}, the annotation "
                     f"file says {width}x{height}", str(path), "images", index, rid)
    return None


def validate_files(
    coco: dict[str, Any],
    image_root: str | os.PathLike[str],
    *,
    decode: bool = False,
    workers: int | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    progress: bool = True,
) -> list[Issue]:
    """Check the image file of every image record whose file_name is safe to use.

    Args:
        coco: COCO dict.
        image_root: the folder ``file_name`` is relative to.
        decode: decode every image fully, to find damaged files (slower). Without it only headers are read,
            plus the end of each JPEG and PNG: a file cut short is still found (see ``check_image_file``).
        workers: processes for the per-file checks (default: all cores).
        max_pixels: header sizes above this are refused as decompression bombs.
        progress: show a progress bar.

    Returns:
        One issue per bad file, in image order.
    """
    jobs = [
        (i, img.get("id"), img["file_name"], img.get("width"), img.get("height"))
        for i, img in enumerate(coco["images"])
        if "file_name" in img and file_name_problem(img["file_name"]) is None
    ]
    check = partial(_check_one, root=str(image_root), decode=decode, max_pixels=max_pixels)
    found = parallel_map(check, jobs, workers=workers, desc="checking images", progress=progress)
    return [issue for issue in found if issue is not None]

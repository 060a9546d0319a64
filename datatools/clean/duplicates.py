"""Exact and near duplicates, within a dataset and against other datasets (train/test leakage).

Exact duplicates have the same decoded pixels (a digest of them, so a re-saved PNG of a JPEG's pixels counts;
a re-encoded JPEG does not). Near duplicates are within the perceptual-hash distance of ``folds``
(:mod:`datatools.folds.phash`: the smallest distance over the eight flips and rotations, so flipped and
re-encoded copies are found). Exact copies are grouped first, each group's keeper stands for it, and keepers
within the distance are linked into clusters; every cluster keeps one image, the one with the most
annotations (then the first in the file), and every other member is a finding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.clean.findings import Finding
from datatools.clean.scan import image_fingerprint
from datatools.core.coco import read_coco_json
from datatools.core.errors import InvalidDatasetError
from datatools.core.imageio import read_image
from datatools.core.issues import Severity
from datatools.core.parallel import parallel_map
from datatools.folds.groups import connected_components
from datatools.folds.phash import hamming_pairs

__all__ = ["IMAGE_SUFFIXES", "OtherImages", "against_findings", "duplicate_findings", "fingerprint_file",
           "other_images"]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def _distance(a: npt.NDArray[np.uint64], b: npt.NDArray[np.uint64]) -> int:
    """pHash distance of ``a`` as stored to the nearest of ``b``'s eight flips/rotations."""
    return int(np.bitwise_count(a[0] ^ b).min())


def duplicate_findings(
    images: Sequence[dict[str, Any]],
    digests: Sequence[str],
    phash: npt.NDArray[np.uint64],
    ann_counts: Sequence[int],
    max_distance: int,
) -> list[Finding]:
    """Duplicate clusters of one dataset, as one finding per member that is not its cluster's keeper.

    Args:
        images: the image records, by position.
        digests: each image's pixel digest ('' for images that were not read: they take no part).
        phash: (N, 8) pHash variants (rows of unread images are ignored).
        ann_counts: annotations per image (the keeper has the most).
        max_distance: largest pHash distance of a near duplicate (< 0: no near duplicates).

    Example:
        >>> found = duplicate_findings(ds.images, digests, hashes, counts, max_distance=8)
    """
    read = [i for i, d in enumerate(digests) if d]

    def better(i: int) -> tuple[int, int]:
        return (-ann_counts[i], i)

    groups: dict[str, list[int]] = {}
    for i in read:
        groups.setdefault(digests[i], []).append(i)
    exact_keeper = {i: min(members, key=better) for members in groups.values() for i in members}
    reps = sorted(set(exact_keeper.values()))
    pairs = [(reps[a], reps[b]) for a, b, _ in hamming_pairs(phash[reps], max_distance=max_distance)] \
        if max_distance >= 0 and len(reps) > 1 else []
    comp = connected_components(len(images), pairs)
    members: dict[int, list[int]] = {}
    for i in read:
        members.setdefault(comp[exact_keeper[i]], []).append(i)
    found: list[Finding] = []
    cluster = 0
    for root in sorted(members):
        group = members[root]
        if len(group) < 2:
            continue
        keeper = min((i for i in group if exact_keeper[i] == i), key=better)
        for i in group:
            if i == keeper:
                continue
            img, rep = images[i], exact_keeper[i]
            if rep != i:
                other = images[rep]
                found.append(Finding("duplicate-exact", "same-pixels", Severity.WARNING, 1.0, img["id"],
                                     str(img["file_name"]), f"same pixels as image id {other['id']} "
                                     f"({other['file_name']}), which is kept", related=f"image {other['id']}",
                                     cluster=cluster, image_index=i))
            else:
                d = _distance(phash[i], phash[keeper])
                other = images[keeper]
                found.append(Finding("duplicate-near", "phash", Severity.WARNING, 1.0 - d / 64, img["id"],
                                     str(img["file_name"]), f"near copy of image id {other['id']} "
                                     f"({other['file_name']}), which is kept: pHash distance {d} of 64 (flips and "
                                     "rotations included)", related=f"image {other['id']}", cluster=cluster,
                                     image_index=i))
        cluster += 1
    return found


class OtherImages:
    """The image files of an ``--against`` dataset: ``label`` names it in findings, ``paths`` are its files."""

    def __init__(self, label: str, paths: list[Path]) -> None:
        self.label, self.paths = label, paths


def other_images(path: str | os.PathLike[str]) -> OtherImages:
    """The images of another dataset: a datatools folder (``annotations.json`` + ``images/``), a COCO json (images
    next to it), or a folder of image files (searched recursively).

    Raises:
        InvalidDatasetError: nothing usable there.
    """
    path = Path(path)
    if path.is_file():
        coco, root = read_coco_json(path), path.parent
    elif (path / "annotations.json").is_file():
        coco, root = read_coco_json(path / "annotations.json"), path / "images"
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        if not files:
            raise InvalidDatasetError(f"{path}: no image files to compare against")
        return OtherImages(str(path), files)
    else:
        raise InvalidDatasetError(f"{path}: --against names no dataset folder, COCO file or image folder")
    files = [root / str(img.get("file_name")) for img in coco["images"]]
    missing = [p for p in files if not p.is_file()]
    if missing:
        raise InvalidDatasetError(f"{missing[0]}: image of the --against dataset not found"
                                  + (f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""))
    return OtherImages(str(path), files)


def fingerprint_file(path: str) -> tuple[str, tuple[int, ...]]:
    """``(pixel digest, pHash variants)`` of an image file, as the scan makes them (a parallel_map worker)."""
    digest, phash, _ = image_fingerprint(read_image(path))
    return digest, phash


def against_findings(
    images: Sequence[dict[str, Any]],
    digests: Sequence[str],
    phash: npt.NDArray[np.uint64],
    other: OtherImages,
    max_distance: int,
    *,
    workers: int | None = None,
    progress: bool = False,
) -> list[Finding]:
    """Images of this dataset that also appear in ``other`` (exactly or within the pHash distance): one finding
    per image, naming the closest file there.

    Raises:
        UnreadableFileError: an image of ``other`` cannot be read.

    Example:
        >>> found = against_findings(ds.images, digests, hashes, other_images("test/"), 8)
    """
    prints = parallel_map(fingerprint_file, [str(p) for p in other.paths], workers=workers,
                          desc="clean: hashing --against", progress=progress)
    by_digest: dict[str, int] = {}
    for j, (digest, _) in enumerate(prints):
        by_digest.setdefault(digest, j)
    theirs = np.array([p for _, p in prints], dtype=np.uint64).reshape(len(prints), 8)
    read = [i for i, d in enumerate(digests) if d]
    nearest: dict[int, tuple[int, int]] = {}
    if max_distance >= 0 and read and len(theirs):
        for a, j, d in hamming_pairs(phash[read], theirs, max_distance=max_distance):
            i = read[a]
            if i not in nearest or (d, j) < nearest[i]:
                nearest[i] = (d, j)
    found: list[Finding] = []
    for i in read:
        img = images[i]
        if digests[i] in by_digest:
            where = other.paths[by_digest[digests[i]]]
            found.append(Finding("leak-exact", "same-pixels", Severity.ERROR, 1.0, img["id"], str(img["file_name"]),
                                 f"same pixels as {where} in {other.label}", related=str(where), image_index=i))
        elif i in nearest:
            d, j = nearest[i]
            found.append(Finding("leak-near", "phash", Severity.ERROR, 1.0 - d / 64, img["id"],
                                 str(img["file_name"]), f"near copy of {other.paths[j]} in {other.label}: pHash "
                                 f"distance {d} of 64", related=str(other.paths[j]), image_index=i))
    return found

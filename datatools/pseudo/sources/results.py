"""A COCO results file of scored instance masks (what detectron2 and mmdetection write).

An instance scoring at least its class's threshold becomes an annotation (its segmentation as given, so
overlaps are resolved later by ``--overlap`` like for any dataset); one scoring in ``[uncertain, threshold)``
becomes ignore, except where a confident instance covers the pixel; lower ones are dropped. Confident instances
smaller than ``min_area`` pixels become ignore too.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pycocotools import mask as mask_utils

from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.core.masks import annotation_to_rle, mask_to_rle
from datatools.core.parallel import parallel_imap

from ..rule import RuleConfig
from ..writer import ImageLabels, rle_annotation
from .base import Decision, Target, sha256_of

__all__ = ["ResultsSource"]


def _str_counts(rle: dict[str, Any]) -> dict[str, Any]:
    counts = rle["counts"]
    return {"size": [int(v) for v in rle["size"]],
            "counts": counts.decode("ascii") if isinstance(counts, bytes) else counts}


def _one(job: tuple[Target, list[dict[str, Any]]], decision: Decision, uncertain: float) -> ImageLabels:
    target, instances = job
    h, w = target.size_hw
    limit = dict(zip(decision.category_ids, decision.thresholds.tolist(), strict=True))
    index = {cat: k for k, cat in enumerate(decision.category_ids)}
    anns: list[dict[str, Any]] = []
    confident = np.zeros((h, w), dtype=bool)
    unsure = np.zeros((h, w), dtype=bool)
    pixels = [[0, 0] for _ in decision.names]
    for inst in instances:
        score, cat = float(inst["score"]), int(inst["category_id"])
        if score < uncertain:
            continue
        rle = annotation_to_rle(inst["segmentation"], h, w)
        mask = mask_utils.decode(rle).view(bool)
        area = int(mask.sum())
        pixels[index[cat]][0] += area
        if score >= limit[cat] and area >= decision.min_area:
            anns.append(rle_annotation(cat, _str_counts(rle)))
            confident |= mask
            pixels[index[cat]][1] += area
        else:
            unsure |= mask
    ignore = unsure & ~confident
    return ImageLabels(anns, mask_to_rle(ignore) if ignore.any() else None, 1.0 - float(ignore.mean()), pixels)


class ResultsSource:
    """Scored instances of a COCO results file, for the images of a COCO dataset (ids must match).

    Raises:
        UnreadableFileError: the file is missing or not JSON.
        InvalidDatasetError: it is not a list of scored instance masks.

    Example:
        >>> src = ResultsSource("detectron2/coco_instances_results.json")
    """

    kind = "predictions"
    mode = "instances"

    def __init__(self, path: str | os.PathLike[str], categories: Sequence[dict[str, Any]]) -> None:
        self.path = Path(path)
        self.categories = [(int(c["id"]), str(c["name"])) for c in categories]
        try:
            results = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UnreadableFileError(f"{self.path}: results file not found") from None
        except (OSError, ValueError) as exc:
            raise UnreadableFileError(f"{self.path}: not a readable JSON results file ({exc})") from None
        if not isinstance(results, list):
            raise InvalidDatasetError(f"{self.path}: a COCO results file is a JSON list of instances")
        known = {cid for cid, _ in self.categories}
        self.by_image: dict[Any, list[dict[str, Any]]] = {}
        for i, r in enumerate(results):
            if not isinstance(r, dict) or not {"image_id", "category_id", "score", "segmentation"} <= r.keys():
                raise InvalidDatasetError(f"{self.path}: instance {i} lacks image_id, category_id, score or "
                                          f"segmentation (instance masks are needed, not boxes)")
            if r["category_id"] not in known:
                raise InvalidDatasetError(f"{self.path}: instance {i} has category_id {r['category_id']!r}, not a "
                                          f"category of the dataset {sorted(known)}")
            if not isinstance(r["score"], int | float):
                raise InvalidDatasetError(f"{self.path}: instance {i} has a non-numeric score {r['score']!r}")
            self.by_image.setdefault(r["image_id"], []).append(r)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(n for _, n in self.categories)

    def classes(self) -> list[tuple[int, str]]:
        return list(self.categories)

    def check(self, targets: Sequence[Target], categories: Sequence[dict[str, Any]] | None, source: Any) -> None:
        """Every instance names an image of the dataset, and its mask has the image's size."""
        sizes = {t.record.get("id"): t.size_hw for t in targets}
        for image_id, instances in self.by_image.items():
            if image_id not in sizes:
                raise InvalidDatasetError(f"{self.path}: image_id {image_id!r} is not an image of {source}")
            h, w = sizes[image_id]
            for inst in instances:
                seg = inst["segmentation"]
                size = seg.get("size") if isinstance(seg, dict) else [h, w]
                if not isinstance(seg, dict | list) or [int(v) for v in size or []] != [h, w]:
                    raise InvalidDatasetError(f"{self.path}: an instance of image_id {image_id!r} has a mask of "
                                              f"size {size}, the image is [height, width] = {[h, w]}")

    def provenance(self) -> dict[str, Any]:
        return {"kind": self.kind, "results": {"path": str(self.path), "sha256": sha256_of(self.path)}}

    def labels(self, targets: Sequence[Target], decision: Decision, rule: RuleConfig, *, workers: int | None,
               progress: bool) -> Iterator[ImageLabels]:
        jobs = [(t, self.by_image.get(t.record.get("id"), [])) for t in targets]
        fn = functools.partial(_one, decision=decision, uncertain=rule.uncertain)
        yield from parallel_imap(fn, jobs, workers=workers, desc="pseudo-labelling", progress=progress)

"""``edit merge``: several datasets as one.

- Images and annotations are renumbered 1..N in input order (dataset by dataset, file order within each).
- Categories are matched by name. The first dataset's categories come first, with their ids; a name the
  earlier datasets lack is appended with its own id, or the next free id when that one is taken. When every
  input has exactly the same category list (ids and names) it is kept as is, duplicate names included;
  otherwise a name held by two categories of one input cannot be matched and is refused.
- Provenance: each image records where it came from in ``images[].datatools.origin`` (dataset, image id,
  file name); ``datatools.sources`` of derived images are renumbered to the merged ids, and a source that
  is not an image of its own input becomes ``"<dataset>:<id>"`` so it can never name another input's image.
- A file name taken by an earlier dataset gets the dataset's label as a folder (``valid/x.jpg``).
- Top-level fields other than images, annotations and categories come from the first dataset.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatools.core.dataset import Dataset
from datatools.core.errors import DatatoolsError, InvalidDatasetError

__all__ = ["MergeResult", "dataset_labels", "merge_datasets"]


@dataclass
class MergeResult:
    """The merged COCO dict, the file of each image, and a summary.

    Attributes:
        coco: the merged dict.
        files: per merged image, its source file.
        summary: per input its label, images, annotations and renamed files; the category mapping.
    """

    coco: dict[str, Any]
    files: list[Path]
    summary: dict[str, Any]


def dataset_labels(datasets: Sequence[Dataset]) -> list[str]:
    """A short unique label per dataset: its folder name (``train``), ``_2`` appended on a repeat."""
    labels: list[str] = []
    for ds in datasets:
        src = Path(ds.source) if ds.source is not None else Path("dataset")
        base = src.parent.name if src.name in ("annotations.json", "_annotations.coco.json") else src.stem
        base = base or "dataset"
        label, n = base, 2
        while label in labels:
            label, n = f"{base}_{n}", n + 1
        labels.append(label)
    return labels


def _same_categories(datasets: Sequence[Dataset]) -> bool:
    first = [(c["id"], c["name"]) for c in datasets[0].categories]
    return all([(c["id"], c["name"]) for c in ds.categories] == first for ds in datasets[1:])


def _category_maps(datasets: Sequence[Dataset]) -> tuple[list[dict[str, Any]], list[dict[Any, Any]]]:
    """The merged categories and, per input, its category id -> merged id."""
    if _same_categories(datasets):
        same = copy.deepcopy(datasets[0].categories)
        return same, [{c["id"]: c["id"] for c in same} for _ in datasets]
    cats: list[dict[str, Any]] = []
    by_name: dict[str, Any] = {}
    maps = []
    for ds in datasets:
        names = [str(c["name"]) for c in ds.categories]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup is not None:
            raise InvalidDatasetError(f"{ds.source}: category name {dup!r} is held by two categories, so it cannot be "
                                      "matched by name; rename one first (datatools edit classes --rename id:N=NEW)")
        mapping = {}
        for cat in ds.categories:
            name = str(cat["name"])
            if name not in by_name:
                taken = {c["id"] for c in cats}
                new_id = cat["id"] if cat["id"] not in taken else max(
                    (int(i) for i in taken if isinstance(i, int)), default=0) + 1
                cats.append({**copy.deepcopy(cat), "id": new_id})
                by_name[name] = new_id
            mapping[cat["id"]] = by_name[name]
        maps.append(mapping)
    return cats, maps


def merge_datasets(datasets: Sequence[Dataset], labels: Sequence[str] | None = None) -> MergeResult:
    """Merge ``datasets`` (in order) into one COCO dict; nothing is written.

    Args:
        datasets: two or more datasets.
        labels: a label per dataset for provenance and renamed files (default :func:`dataset_labels`).

    Returns:
        The merged dict, the source file of every image and a summary.

    Raises:
        DatatoolsError: fewer than two datasets.
        InvalidDatasetError: a category name that cannot be matched (held by two categories of one input).

    Example:
        >>> m = merge_datasets([Dataset.from_dir("a/"), Dataset.from_dir("b/")])
        >>> len(m.coco["images"]) == len(m.files)
        True
    """
    if len(datasets) < 2:
        raise DatatoolsError("merge needs at least two datasets")
    labels = list(labels) if labels is not None else dataset_labels(datasets)
    cats, cat_maps = _category_maps(datasets)
    images: list[dict[str, Any]] = []
    annotations: list[dict[str, Any]] = []
    files: list[Path] = []
    taken: set[str] = set()
    per_input = []
    for ds, label, cat_map in zip(datasets, labels, cat_maps, strict=True):
        start = len(images) + 1
        id_map = {img["id"]: start + k for k, img in enumerate(ds.images)}
        renamed = 0
        for img in ds.images:
            rec = copy.deepcopy(img)
            name = str(img["file_name"])
            new_name, n = name, 2
            prefix = label
            while new_name in taken:
                new_name, prefix, n = f"{prefix}/{name}", f"{label}_{n}", n + 1
            renamed += new_name != name
            taken.add(new_name)
            meta = dict(rec.get("datatools") or {})
            if isinstance(meta.get("sources"), list):
                meta["sources"] = [id_map[s] if s in id_map else f"{label}:{s}" for s in meta["sources"]]
            meta["origin"] = {"dataset": label, "source": str(ds.source), "id": img["id"], "file_name": name}
            rec.update(id=id_map[img["id"]], file_name=new_name, datatools=meta)
            images.append(rec)
            files.append(ds.image_path(img))
        for ann in ds.annotations:
            annotations.append({**copy.deepcopy(ann), "id": len(annotations) + 1, "image_id": id_map[ann["image_id"]],
                                "category_id": cat_map[ann["category_id"]]})
        per_input.append({"label": label, "source": str(ds.source), "images": len(ds.images),
                          "annotations": len(ds.annotations), "renamed_files": renamed})
    coco = {**datasets[0].coco, "images": images, "annotations": annotations, "categories": cats}
    summary = {"inputs": per_input, "images": len(images), "annotations": len(annotations),
               "categories": [{"id": c["id"], "name": c["name"]} for c in cats]}
    return MergeResult(coco, files, summary)

"""Reference checks for provenance-following splits, written apart from datatools: ancestors walked by id, groups
from scipy's connected components."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components as scipy_components


def ancestors(coco: dict[str, Any]) -> dict[Any, set[Any]]:
    """Reference: every image id -> the ids of the dataset's images it was made from, directly or not."""
    sources = {img["id"]: (img.get("datatools") or {}).get("sources") or [] for img in coco["images"]}
    out: dict[Any, set[Any]] = {}
    for image_id in sources:
        seen: set[Any] = set()
        stack = [s for s in sources[image_id] if s in sources]
        while stack:
            s = stack.pop()
            if s not in seen:
                seen.add(s)
                stack += [t for t in sources[s] if t in sources]
        out[image_id] = seen
    return out


def crossing(coco: dict[str, Any], fold_of: dict[Any, int]) -> set[tuple[Any, Any]]:
    """(derived id, ancestor id) pairs on different folds: the provenance violations."""
    return {(i, a) for i, found in ancestors(coco).items() for a in found if fold_of[i] != fold_of[a]}


def reference_components(coco: dict[str, Any], keys: list[str] | None = None) -> np.ndarray:
    """scipy's connected components over the source links (and images sharing a key)."""
    pos = {img["id"]: n for n, img in enumerate(coco["images"])}
    rows, cols = [], []
    for n, img in enumerate(coco["images"]):
        for s in (img.get("datatools") or {}).get("sources") or []:
            rows.append(n)
            cols.append(pos[s])
    for key in set(keys or []):
        members = [n for n, k in enumerate(keys or []) if k == key]
        rows += members[1:]
        cols += [members[0]] * (len(members) - 1)
    n = len(coco["images"])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    return scipy_components(graph, directed=False)[1]


def fold_map(folds_dir: Path) -> dict[Any, int]:
    table = pd.read_parquet(folds_dir / "folds.parquet")
    return dict(zip(table["image_id"].tolist(), table["fold"].tolist(), strict=True))

"""``eda --compare``: other splits (valid, test, an unlabelled test set) against the analysed one.

Each split goes through eda's own image pass (:func:`datatools.eda.accumulate.run_pass`, with the images'
fingerprints), so every number here comes from the same single decode as the rest of the report. What is
compared:

* class shares per split, matched by class display name (:func:`datatools.core.classes.display_names`): of the
  instances, of the images holding the class, of the labelled pixels; the total variation distance of each
  share vector against the first split, and the largest differences flagged;
* numeric features (object side and relative area, objects per image, image size, brightness, contrast,
  channel means): the two-sample Kolmogorov-Smirnov statistic (:func:`scipy.stats.ks_2samp`) against the first
  split; an images-only split has the image features alone;
* leakage: images of two splits with the same pixels (exact), or within the pHash distance of ``folds check``
  over the eight flips/rotations (near; :func:`datatools.folds.phash.hamming_pairs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.classes import ClassMap
from datatools.core.dataset import ANNOTATIONS_FILE, IMAGES_DIR, Dataset
from datatools.core.errors import DatatoolsError
from datatools.core.imageio import IMAGE_EXTENSIONS, read_image_size
from datatools.eda.accumulate import Totals
from datatools.folds.phash import DEFAULT_MAX_DISTANCE, hamming_pairs

__all__ = ["CompareResult", "CompareSpec", "SplitData", "compare_lines", "compare_splits", "parse_compare",
           "split_name", "unlabelled_coco"]

#: A class share that differs from the first split's by at least this much is flagged (besides the largest).
FLAG_DIFFERENCE = 0.10
#: Roboflow exports keep the annotation file among the images under this name.
ROBOFLOW_FILE = "_annotations.coco.json"


@dataclass(frozen=True)
class CompareSpec:
    """One ``--compare`` value: a name, and where the split is.

    Attributes:
        name: the split's name in the report.
        ann: its COCO file, or ``None`` for an images-only (unlabelled) split.
        root: its image folder.
    """

    name: str
    ann: Path | None
    root: Path


def split_name(ann: Path) -> str:
    """A split's default name: the folder of ``annotations.json`` or ``_annotations.coco.json``, else the
    file's stem (``valid.json``: ``valid``)."""
    return ann.parent.resolve().name if ann.name in (ANNOTATIONS_FILE, ROBOFLOW_FILE) else ann.stem


def parse_compare(value: str) -> CompareSpec:
    """``[NAME=]PATH``: a COCO json (images beside it), a datatools dataset folder, a Roboflow split folder
    (``_annotations.coco.json`` among the images), or a folder of images only (unlabelled). The name defaults
    to the folder's name.

    Raises:
        DatatoolsError: the path does not exist, or the name is empty.

    Example:
        >>> parse_compare("test=../shared/data/medical_waste/test").name
        'test'
    """
    name, sep, rest = value.partition("=")
    if not sep or "/" in name or "\\" in name:  # no name (an '=' after a separator belongs to the path)
        name, rest = "", value
    elif not name.strip():
        raise DatatoolsError(f"--compare {value}: the name before '=' is empty (give NAME=PATH or PATH)")
    path = Path(rest)
    if path.is_file():
        return CompareSpec(name or split_name(path), path, path.parent)
    if not path.is_dir():
        raise DatatoolsError(f"--compare {value}: {path} is neither a COCO file nor a folder")
    if (path / ANNOTATIONS_FILE).is_file():
        return CompareSpec(name or path.resolve().name, path / ANNOTATIONS_FILE, path / IMAGES_DIR)
    if (path / ROBOFLOW_FILE).is_file():
        return CompareSpec(name or path.resolve().name, path / ROBOFLOW_FILE, path)
    return CompareSpec(name or path.resolve().name, None, path)


def unlabelled_coco(root: Path) -> dict[str, Any]:
    """A COCO dict listing every image file under ``root`` (sorted, sizes from the headers), no annotations.

    Raises:
        DatatoolsError: the folder holds no image file.
        UnreadableFileError: a file's header cannot be read.
    """
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise DatatoolsError(f"{root}: --compare found no annotation file and no image ({', '.join(IMAGE_EXTENSIONS)})")
    images = []
    for i, p in enumerate(files, start=1):
        w, h = read_image_size(p)
        images.append({"id": i, "file_name": p.relative_to(root).as_posix(), "width": w, "height": h})
    return {"images": images, "annotations": [], "categories": []}


@dataclass
class SplitData:
    """One split after the pass: its records, class map and totals (``labelled`` False: images only)."""

    name: str
    ds: Dataset
    class_map: ClassMap
    totals: Totals
    labelled: bool = True

    def labels(self) -> list[str]:
        return self.class_map.display_names()

    def class_counts(self) -> dict[str, npt.NDArray[np.int64]]:
        """Per class (in ``labels`` order): instances, images holding it, labelled pixels."""
        k = len(self.class_map)
        value_of = {c.category_id: c.value for c in self.class_map.classes}
        pos = {img["id"]: i for i, img in enumerate(self.ds.images)}
        values = np.array([value_of[a["category_id"]] for a in self.ds.annotations], dtype=np.int64)
        where = np.array([pos[a["image_id"]] for a in self.ds.annotations], dtype=np.int64)
        present = np.zeros((len(self.ds.images), k + 1), dtype=bool)
        present[where, values] = True
        px = self.totals.class_px
        return {"instances": np.bincount(values, minlength=k + 1)[1:],
                "images": present[:, 1:].sum(axis=0).astype(np.int64),
                "pixels": (px[:, 1:k + 1].sum(axis=0) if len(px) else np.zeros(k)).astype(np.int64)}

    def features(self) -> dict[str, npt.NDArray[np.float64]]:
        """The numeric features whose distributions are compared (image features for every split, object
        features for labelled ones)."""
        pix = self.totals.pixel_table
        ok = ~np.isnan(pix[:, 6]) if len(pix) else np.zeros(0, dtype=bool)
        w = np.array([float(img["width"]) for img in self.ds.images])
        h = np.array([float(img["height"]) for img in self.ds.images])
        out = {"brightness": pix[ok, 6], "contrast": pix[ok, 7], "mean R": pix[ok, 0], "mean G": pix[ok, 1],
               "mean B": pix[ok, 2], "image width": w, "image height": h}
        if self.labelled:
            area = {img["id"]: float(img["width"]) * float(img["height"]) for img in self.ds.images}
            px = self.totals.ann_px.astype(np.float64)
            # the pass's rows are in image order; the image of each row, in that order
            order = [a["image_id"] for img in self.ds.images for a in self.ds.annotations_of(img["id"])]
            rel = px / np.array([area[i] for i in order]) if len(order) else np.zeros(0)
            per_image = np.array([len(self.ds.annotations_of(img["id"])) for img in self.ds.images], np.float64)
            out = {"object side (px)": np.sqrt(px), "object area (% of image)": 100 * rel,
                   "objects per image": per_image, **out}
        return out


@dataclass
class CompareResult:
    """What ``--compare`` found.

    Attributes:
        splits: the split names, the analysed split first.
        labelled: whether each split has annotations.
        classes: class display names (union over the labelled splits, the first split's first).
        shares: kind (``instances``, ``images``, ``pixels``) -> (splits, classes) shares (NaN: split unlabelled).
        counts: the same as counts.
        tv: kind -> total variation distance of each split's share vector from the first split's (NaN for
            the first split and unlabelled ones; the ``images`` shares are normalised to sum to 1 first).
        flagged: kind -> (split index, class index) pairs whose share differs most from the first split's.
        ks: feature -> per split ``(statistic, p-value)`` against the first split (``None`` for the first split
            or when a side has no value).
        features: feature -> per split values (for the overlaid distributions).
        leakage: rows ``(split a, image a, split b, image b, kind, distance)``, ``kind`` ``exact`` or ``near``.
    """

    splits: list[str]
    labelled: list[bool]
    images: list[int]
    classes: list[str]
    shares: dict[str, npt.NDArray[np.float64]]
    counts: dict[str, npt.NDArray[np.int64]]
    tv: dict[str, list[float]]
    flagged: dict[str, list[tuple[int, int]]]
    ks: dict[str, list[tuple[float, float] | None]]
    features: dict[str, list[npt.NDArray[np.float64]]] = field(repr=False)
    leakage: list[tuple[str, str, str, str, str, int]]

    def summary(self) -> dict[str, Any]:
        """The part of ``summary.json`` under ``compare``."""
        def share_rows(kind: str) -> dict[str, list[float | None]]:
            return {s: [None if np.isnan(v) else round(float(v), 6) for v in self.shares[kind][i]]
                    for i, s in enumerate(self.splits)}

        return {
            "splits": [{"name": s, "images": n, "labelled": lab}
                       for s, n, lab in zip(self.splits, self.images, self.labelled, strict=True)],
            "classes": self.classes,
            "shares": {kind: share_rows(kind) for kind in self.shares},
            "total_variation": {kind: {s: None if np.isnan(v) else round(v, 6)
                                       for s, v in zip(self.splits, vals, strict=True)}
                                for kind, vals in self.tv.items()},
            "ks": {f: {s: None if r is None else {"statistic": round(r[0], 6), "pvalue": float(f"{r[1]:.6g}")}
                       for s, r in zip(self.splits, rows, strict=True)} for f, rows in self.ks.items()},
            "leakage": {"exact": sum(r[4] == "exact" for r in self.leakage),
                        "near": sum(r[4] == "near" for r in self.leakage)},
        }

    def leakage_columns(self) -> dict[str, list[Any]]:
        """``leakage.parquet``: one row per pair of images of two splits."""
        names = ("split_a", "file_a", "split_b", "file_b", "kind", "distance")
        return {n: [r[k] for r in self.leakage] for k, n in enumerate(names)}


def _shares(counts: npt.NDArray[np.int64], images: int, kind: str) -> npt.NDArray[np.float64]:
    c = counts.astype(np.float64)
    denom = float(images) if kind == "images" else float(c.sum())
    return c / denom if denom > 0 else np.zeros_like(c)


def _tv(p: npt.NDArray[np.float64], q: npt.NDArray[np.float64]) -> float:
    """Total variation distance of two non-negative vectors, each normalised to sum to 1."""
    sp, sq = p.sum(), q.sum()
    if sp <= 0 or sq <= 0:
        return float("nan")
    return float(0.5 * np.abs(p / sp - q / sq).sum())


def _leakage(splits: list[SplitData], max_distance: int) -> list[tuple[str, str, str, str, str, int]]:
    rows: list[tuple[str, str, str, str, str, int]] = []
    for a in range(len(splits)):
        for b in range(a + 1, len(splits)):
            sa, sb = splits[a], splits[b]
            ia, ib = sorted(sa.totals.digests), sorted(sb.totals.digests)  # positions of the images read
            exact: set[tuple[int, int]] = set()
            by_digest: dict[str, list[int]] = {}
            for i in ia:
                by_digest.setdefault(sa.totals.digests[i], []).append(i)
            for j in ib:
                for i in by_digest.get(sb.totals.digests[j], []):
                    exact.add((i, j))
            near = hamming_pairs(sa.totals.phash[ia], sb.totals.phash[ib], max_distance) if ia and ib else []
            found = {(i, j): ("exact", 0) for i, j in exact}
            for x, y, d in near:
                found.setdefault((ia[x], ib[y]), ("near", d))
            for (i, j), (kind, d) in sorted(found.items()):
                rows.append((sa.name, str(sa.ds.images[i]["file_name"]), sb.name, str(sb.ds.images[j]["file_name"]),
                             kind, d))
    return rows


def compare_splits(splits: list[SplitData], max_distance: int = DEFAULT_MAX_DISTANCE) -> CompareResult:
    """Compare the splits with the first one (class shares, feature distributions) and each other (leakage).

    Args:
        splits: the analysed split first; each with its pass's totals, fingerprints included.
        max_distance: near-duplicate pHash distance (``folds check``'s default).

    Example:
        >>> result = compare_splits([train, valid, test])
        >>> result.tv["instances"]  # [nan, 0.04, 0.12]
    """
    from scipy.stats import ks_2samp

    classes: list[str] = []
    for s in splits:
        classes += [c for c in s.labels() if c not in classes]
    n, k = len(splits), len(classes)
    kinds = ("instances", "images", "pixels")
    counts = {kind: np.zeros((n, k), dtype=np.int64) for kind in kinds}
    shares = {kind: np.full((n, k), np.nan) for kind in kinds}
    for i, s in enumerate(splits):
        if not s.labelled:
            continue
        cols = [classes.index(c) for c in s.labels()]
        for kind, values in s.class_counts().items():
            counts[kind][i, cols] = values
            shares[kind][i] = _shares(counts[kind][i], len(s.ds.images), kind)
    tv = {kind: [float("nan")] + [_tv(shares[kind][0], shares[kind][i]) if splits[i].labelled and splits[0].labelled
                                  else float("nan") for i in range(1, n)] for kind in kinds}
    flagged: dict[str, list[tuple[int, int]]] = {}
    for kind in kinds:
        marks = []
        for i in range(1, n):
            if not (splits[i].labelled and splits[0].labelled) or k == 0:
                continue
            diff = np.abs(shares[kind][i] - shares[kind][0])
            top = int(np.argmax(diff))
            marks += [(i, j) for j in range(k) if diff[j] > 0 and (j == top or diff[j] >= FLAG_DIFFERENCE)]
        flagged[kind] = marks
    per_split = [s.features() for s in splits]
    names: list[str] = []
    for feats in per_split:
        names += [f for f in feats if f not in names]
    features = {f: [feats.get(f, np.zeros(0)) for feats in per_split] for f in names}
    ks: dict[str, list[tuple[float, float] | None]] = {}
    for f, samples in features.items():
        row: list[tuple[float, float] | None] = [None]
        for v in samples[1:]:
            if len(samples[0]) and len(v):
                r = ks_2samp(samples[0], v)
                row.append((float(r.statistic), float(r.pvalue)))
            else:
                row.append(None)
        ks[f] = row
    if any(len(s.totals.phash) != len(s.ds.images) for s in splits):
        raise DatatoolsError("internal: the pass ran without fingerprints")  # pragma: no cover
    return CompareResult([s.name for s in splits], [s.labelled for s in splits], [len(s.ds.images) for s in splits],
                         classes, shares, counts, tv, flagged, ks, features, _leakage(splits, max_distance))


def compare_lines(summary: dict[str, Any] | None) -> list[str]:
    """What ``datatools eda --compare`` prints: per compared split, its distances; then the leakage found.

    Example:
        >>> compare_lines(result.summary["compare"])[-1]
        'leakage across splits: 1 exact, 2 near (Splits section, leakage.parquet)'
    """
    if not summary:
        return []
    lines = []
    first = summary["splits"][0]["name"]
    for split in summary["splits"][1:]:
        name = split["name"]
        tv = summary["total_variation"]
        parts = [f"TV {kind} {tv[kind][name]:.3f}" for kind in ("instances", "images", "pixels")
                 if tv[kind][name] is not None]
        ks = [(f, rows[name]["statistic"]) for f, rows in summary["ks"].items() if rows.get(name)]
        if ks:
            feat, stat = max(ks, key=lambda t: t[1])
            parts.append(f"largest KS {stat:.3f} ({feat})")
        kind = "" if split["labelled"] else ", unlabelled"
        lines.append(f"compare {name} ({split['images']} images{kind}) vs {first}: {'; '.join(parts)}")
    leak = summary["leakage"]
    lines.append(f"leakage across splits: {leak['exact']} exact, {leak['near']} near (Splits section, leakage.parquet)")
    return lines

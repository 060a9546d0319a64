"""Build the small example dataset in ``examples/medical_waste`` from the full medical-waste export.

The source is the Roboflow "medical-waste" export (COCO instance segmentation, CC BY 4.0) as committed in the
public repository Elbhnasy/Medical_Waste_Detection_Detectron2 (``data/``); a copy lives in
``../shared/data/medical_waste``. This script keeps the Roboflow layout::

    <out>/train/_annotations.coco.json   + the image files beside it
    <out>/valid/_annotations.coco.json   + the image files beside it
    <out>/README.md                      attribution, licence and the counts of the subset

and picks about 45 train and 15 valid images, deterministically (no random state: candidates are ordered by
the SHA-256 of their names), so that

* every category that has annotations is present in both splits;
* train holds the image with the most objects (87) and the images without annotations;
* train images are picked in whole groups of Roboflow copies of one photo (``<stem>.rf.<hash>.jpg``), so a
  fold-by-group demo on the subset makes sense.

The COCO files are only filtered: ids, every field, key order and the category list (placeholder id 0
included) are as in the source. Image bytes are copied unchanged.

Run from the repository root::

    .venv/bin/python examples/make_medical_waste_subset.py
    .venv/bin/python examples/make_medical_waste_subset.py --src PATH/medical_waste --out examples/medical_waste
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
ANN_FILE = "_annotations.coco.json"
IMAGE_EXTS = {".jpg", ".jpeg", ".png"}
RF_SUFFIX = re.compile(r"\.rf\.[0-9a-f]+\.[A-Za-z]+$")  # Roboflow copy suffix: <stem>.rf.<hash>.jpg


def group_of(file_name: str) -> str:
    """The source photo of a Roboflow export file: ``a_jpg.rf.0123abcd.jpg`` -> ``a_jpg``."""
    return RF_SUFFIX.sub("", file_name)


def _rank(name: str) -> str:
    """A fixed pseudo-random order that does not depend on the file order or on Python's hash seed."""
    return hashlib.sha256(name.encode("utf-8")).hexdigest()


def select(coco: dict[str, Any], target: int, *, whole_groups: bool, force_most_objects: bool,
           force_empty: bool) -> list[Any]:
    """Image ids of the subset of one split.

    Order of picking: the group of the image with most objects, the groups of images without annotations,
    then for each annotated category not yet present the first candidate (in SHA-256 order) holding it, then
    candidates in SHA-256 order while they fit into ``target`` images.
    """
    anns_of: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for ann in coco["annotations"]:
        anns_of[ann["image_id"]].append(ann)
    units: dict[str, list[Any]] = defaultdict(list)  # pick unit (a group of copies, or one image) -> image ids
    for img in coco["images"]:
        units[group_of(img["file_name"]) if whole_groups else img["file_name"]].append(img["id"])
    unit_of = {i: u for u, ids in units.items() for i in ids}
    order = sorted(units, key=_rank)

    chosen: list[str] = []

    def take(unit: str) -> None:
        if unit not in chosen:
            chosen.append(unit)

    def size() -> int:
        return sum(len(units[u]) for u in chosen)

    if force_most_objects and anns_of:
        most = max(coco["images"], key=lambda im: (len(anns_of.get(im["id"], [])), -coco["images"].index(im)))
        take(unit_of[most["id"]])
    if force_empty:
        for img in coco["images"]:
            if not anns_of.get(img["id"]):
                take(unit_of[img["id"]])
    used_categories = sorted({a["category_id"] for a in coco["annotations"]})
    for cat in used_categories:
        present = {a["category_id"] for u in chosen for i in units[u] for a in anns_of.get(i, [])}
        if cat not in present:
            take(next(u for u in order if any(a["category_id"] == cat for i in units[u] for a in anns_of[i])))
    for unit in order:
        if size() >= target:
            break
        if unit not in chosen and size() + len(units[unit]) <= target:
            take(unit)
    return [i for u in chosen for i in units[u]]


def write_split(src: Path, dst: Path, coco: dict[str, Any], image_ids: list[Any]) -> dict[str, Any]:
    """Write the filtered COCO file and copy the images; return the filtered COCO dict."""
    keep = set(image_ids)
    sub = {key: value for key, value in coco.items()}  # every top-level field, in file order
    sub["images"] = [im for im in coco["images"] if im["id"] in keep]
    sub["annotations"] = [a for a in coco["annotations"] if a["image_id"] in keep]
    if dst.exists():
        stray = [p.name for p in dst.iterdir() if not (p.is_file() and (p.name == ANN_FILE or p.suffix.lower()
                                                                         in IMAGE_EXTS))]
        if stray:
            sys.exit(f"{dst}: holds files this script did not write ({stray[:3]}); not replacing it")
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for im in sub["images"]:
        shutil.copyfile(src / im["file_name"], dst / im["file_name"])
    with open(dst / ANN_FILE, "w", encoding="utf-8") as f:
        json.dump(sub, f, indent=None, separators=(",", ":"))
    return sub


def counts(coco: dict[str, Any]) -> dict[str, Any]:
    """Images, annotations, empty images, source photos and per-category (instances, images)."""
    per_cat = Counter(a["category_id"] for a in coco["annotations"])
    imgs_cat = Counter(c for c, _ in {(a["category_id"], a["image_id"]) for a in coco["annotations"]})
    annotated = {a["image_id"] for a in coco["annotations"]}
    return {
        "images": len(coco["images"]),
        "annotations": len(coco["annotations"]),
        "empty": sum(1 for im in coco["images"] if im["id"] not in annotated),
        "photos": len({group_of(im["file_name"]) for im in coco["images"]}),
        "per_category": {c["id"]: (c["name"], per_cat[c["id"]], imgs_cat[c["id"]]) for c in coco["categories"]},
        "max_objects": max(Counter(a["image_id"] for a in coco["annotations"]).values(), default=0),
    }


def readme(stats: dict[str, dict[str, Any]]) -> str:
    rows = "\n".join(
        f"| {s} | {c['images']} | {c['photos']} | {c['annotations']} | {c['empty']} | {c['max_objects']} |"
        for s, c in stats.items())
    splits = list(stats)
    cats = stats[splits[0]]["per_category"]
    head = " | ".join(f"{s}: instances | {s}: images" for s in splits)
    cat_rows = "\n".join(
        f"| {cid} | {name} | " + " | ".join(f"{stats[s]['per_category'][cid][1]} | {stats[s]['per_category'][cid][2]}"
                                            for s in splits) + " |"
        for cid, (name, _, _) in cats.items())
    return f"""# Medical-waste example subset

A small real subset of the medical-waste instance-segmentation dataset, for examples, docs and tests.

* **Source:** the Roboflow "medical-waste" export (COCO instance segmentation, version 6, exported
  2023-08-30) as committed in the public GitHub repository
  [Elbhnasy/Medical_Waste_Detection_Detectron2](https://github.com/Elbhnasy/Medical_Waste_Detection_Detectron2),
  folder `data/`.
* **Licence:** [CC BY 4.0](https://creativecommons.org/licenses/by/4.0/) (as stated in the `licenses` field of
  the COCO files). Keep this attribution with any copy.
* **Changes:** only a selection. Images and annotations were filtered; ids, every field and the category list
  (including the empty placeholder category with id 0) are as in the source, and image bytes are unchanged.

Layout (Roboflow): `train/_annotations.coco.json` and `valid/_annotations.coco.json`, each with its images
beside it.

## How it was made

By `examples/make_medical_waste_subset.py`, deterministically (candidates ordered by the SHA-256 of their
names). Every category with annotations is present in both splits; train holds the image with the most objects
and the source's images without annotations (the source `valid/` has none); train images were picked in whole
groups of Roboflow copies of one photo (`<stem>.rf.<hash>.jpg`), so folds by group make sense. Re-run from the
repository root:

```
.venv/bin/python examples/make_medical_waste_subset.py --src ../shared/data/medical_waste --out examples/medical_waste
```

## Counts

| split | images | source photos | instances | images without annotations | most objects in one image |
|---|---|---|---|---|---|
{rows}

| category id | name | {head} |
|---|---|{"---|---|" * len(splits)}
{cat_rows}
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--src", type=Path, default=REPO_ROOT / "../shared/data/medical_waste",
                        help="the full export (folders train/ and valid/); default ../shared/data/medical_waste "
                             "relative to the repository root")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "examples/medical_waste",
                        help="where the subset goes; default examples/medical_waste in the repository")
    parser.add_argument("--train", type=int, default=45, help="train images (about; whole groups are kept)")
    parser.add_argument("--valid", type=int, default=15, help="valid images")
    args = parser.parse_args(argv)

    src, out = args.src.resolve(), args.out.resolve()
    if not (src / "train" / ANN_FILE).is_file():
        sys.exit(f"{src}: no train/{ANN_FILE}; give --src")
    stats = {}
    picked = {}
    for split, target, is_train in (("train", args.train, True), ("valid", args.valid, False)):
        with open(src / split / ANN_FILE, encoding="utf-8") as f:
            coco = json.load(f)
        ids = select(coco, target, whole_groups=is_train, force_most_objects=is_train, force_empty=is_train)
        picked[split] = coco, ids
    used = [{a["category_id"] for a in coco["annotations"]} for coco, _ in picked.values()]
    for split, (coco, ids) in picked.items():
        sub = write_split(src / split, out / split, coco, ids)
        stats[split] = counts(sub)
        missing = set().union(*used) - {a["category_id"] for a in sub["annotations"]}
        if missing:
            sys.exit(f"{split}: categories {sorted(missing)} are missing from the subset")
    (out / "README.md").write_text(readme(stats), encoding="utf-8")
    for split, c in stats.items():
        per = ", ".join(f"{name} {n}/{k}" for name, n, k in c["per_category"].values())
        print(f"{split}: {c['images']} images ({c['photos']} photos, {c['empty']} without annotations), "
              f"{c['annotations']} instances; per class instances/images: {per}")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

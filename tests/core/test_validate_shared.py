"""``validate_dataset`` on real exports: it finds their real problems and nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datatools.validation import validate_dataset

pytestmark = pytest.mark.shared_data


def _found(ann: Path, images: Path) -> list[tuple[str, str, object]]:
    issues = validate_dataset(ann, images, decode=True, workers=1).issues
    return sorted(((i.severity.value, i.code, i.record_id) for i in issues), key=repr)


@pytest.mark.parametrize("split", ["train", "valid", "test"])
def test_medical_waste(shared_data: Path, split: str) -> None:
    folder = shared_data / "medical_waste" / split
    ann = folder / "_annotations.coco.json"
    coco = json.loads(ann.read_text(encoding="utf-8"))
    used = {a["image_id"] for a in coco["annotations"]}
    unannotated = [img["id"] for img in coco["images"] if img["id"] not in used]
    zero = [c for c in coco["categories"] if c["id"] == 0]
    assert [c["name"] for c in zero] == ["medical-waste"]  # the Roboflow placeholder
    assert not any(a["category_id"] == 0 for a in coco["annotations"])
    if split == "train":
        assert len(unannotated) == 3

    expected = [("warning", "category-id-zero", 0)] + [("info", "no-annotations", i) for i in unannotated]
    assert _found(ann, folder) == sorted(expected, key=repr)


EDGE = "coco_edge_cases"
# (instance file, image root, expected issues); roots are next to the files
EDGE_CASES: list[tuple[str, str, list[tuple[str, str, object]]]] = [
    # an instance with "segmentation": [] is box-only: it cannot be rasterised
    ("coco_dataset/coco_instances/annotations/instances_train.json", "coco_dataset/coco_instances/images/train",
     [("error", "empty-segmentation", 1)]),
    # a polygon plus an uncompressed crowd RLE whose counts cover the 10x5 image exactly: clean
    ("coco_dataset/coco_instances/annotations/instances_val.json", "coco_dataset/coco_instances/images/val", []),
    ("coco_dataset/coco_roboflow/train/_annotations.coco.json", "coco_dataset/coco_roboflow/train",
     [("error", "empty-segmentation", 1)]),
    ("coco_dataset/coco_roboflow/val/_annotations.coco.json", "coco_dataset/coco_roboflow/val", []),
    # stuff: uncompressed RLE (crowd) on both splits, image 10 wide and 5 high
    ("coco_dataset/coco_stuff/annotations/stuff_train.json", "coco_dataset/coco_stuff/images/train", []),
    ("coco_dataset/coco_stuff/annotations/stuff_val.json", "coco_dataset/coco_stuff/images/val", []),
    ("coco_dataset/mmdet_coco/annotations/instances_train.json", "coco_dataset/mmdet_coco/train",
     [("error", "empty-segmentation", 1)]),
    ("coco_dataset/mmdet_coco/annotations/instances_val.json", "coco_dataset/mmdet_coco/val", []),
    ("coco_dataset/coco/annotations/instances_train.json", "coco_dataset/coco/images/train",
     [("error", "empty-segmentation", 1)]),
    ("coco_dataset/coco/annotations/instances_val.json", "coco_dataset/coco/images/val", []),
    # Kaggle / Roboflow exports whose annotations are all bbox-only with "segmentation": [] (ids start at 0)
    ("kaggle_dataset/relaxed_coco/annotations.json", "kaggle_dataset/relaxed_coco",
     [("error", "empty-segmentation", 0), ("error", "empty-segmentation", 1)]),
    ("roboflow_dataset/coco/train/_annotations.coco.json", "roboflow_dataset/coco/train",
     [("error", "empty-segmentation", 0), ("error", "empty-segmentation", 1)]),
    ("roboflow_dataset/coco/val/_annotations.coco.json", "roboflow_dataset/coco/val",
     [("error", "empty-segmentation", 1), ("error", "empty-segmentation", 2)]),
    # not instance files: labels (no segmentation), image info (captions and panoptic are refused: below)
    ("coco_dataset/coco_labels/annotations/labels_val.json", "coco_dataset/coco_labels/images/val",
     [("error", "no-segmentation", 1), ("error", "no-segmentation", 2)]),
    ("coco_dataset/coco_image_info/annotations/image_info_val.json", "coco_dataset/coco_image_info/images/val",
     [("info", "no-annotations", 40)]),
]


@pytest.mark.parametrize(("ann", "images", "expected"), EDGE_CASES, ids=[c[0].split("/", 1)[1] for c in EDGE_CASES])
def test_coco_edge_cases(shared_data: Path, ann: str, images: str, expected: list[tuple[str, str, object]]) -> None:
    assert _found(shared_data / EDGE / ann, shared_data / EDGE / images) == sorted(expected, key=repr)


def test_every_edge_case_instance_file_is_covered(shared_data: Path) -> None:
    """A new instance file under coco_edge_cases must get a row above."""
    covered = {c[0] for c in EDGE_CASES}
    instance_files = {
        p.relative_to(shared_data / EDGE).as_posix()
        for p in (shared_data / EDGE).rglob("*.json")
        if p.name.startswith("instances_") or p.name in ("_annotations.coco.json", "annotations.json")
    }
    assert len(instance_files) == 11
    assert instance_files <= covered


@pytest.mark.parametrize(("ann", "kind"), [("coco_dataset/coco_captions/annotations/captions_train.json", "captions"),
                                           ("coco_dataset/coco_panoptic/annotations/panoptic_train.json", "panoptic")])
def test_captions_and_panoptic_files_are_named_not_instance_files(shared_data: Path, ann: str, kind: str) -> None:
    from datatools.core.errors import InvalidDatasetError

    with pytest.raises(InvalidDatasetError, match=f"not an instance-segmentation file: a COCO {kind} file"):
        validate_dataset(shared_data / EDGE / ann, shared_data / EDGE / ann.rsplit("/annotations/", 1)[0], workers=1)

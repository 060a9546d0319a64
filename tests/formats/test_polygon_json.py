from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils
from pycocotools.coco import COCO

from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.formats.polygon_json import coco_to_polygon_json, polygon_json_to_coco

RECT = [[10, 20], [110, 20], [110, 70], [10, 70]]  # area 100 * 50 = 5000, bbox [10, 20, 100, 50]
TRI = [[5.5, 5.0], [25.5, 5.0], [5.5, 45.0]]  # area 20 * 40 / 2 = 400
BIG = [[20, 30], [260, 40], [280, 180], [150, 190], [30, 150]]

# relative stem -> (image extension, (height, width), annotations)
TREE: dict[str, tuple[str, tuple[int, int], list[dict[str, Any]]]] = {
    "ID001/image1661130828152_R": (
        ".png",
        (200, 300),
        [
            {"label": "finger-2", "points": RECT, "type": "poly_seg", "attributes": {"occluded": False}},
            {"label": "Trapezoid", "points": TRI, "type": "poly_seg"},
        ],
    ),
    "ID001/image1661130891365_L": (
        ".png",
        (200, 300),
        [{"label": "finger-1", "points": BIG, "type": "poly_seg"}],
    ),
    "ID002/image1661144206667_R": (
        ".jpg",
        (120, 160),
        [{"label": "Trapezoid", "points": TRI, "type": "poly_seg"}, {"label": "finger-2", "points": RECT}],
    ),
    "ID002/image1661144246917_L": (".png", (120, 160), []),
}


def make_tree(root: Path, tree: dict[str, Any] = TREE) -> tuple[Path, Path]:
    images, labels = root / "images", root / "labels"
    for stem, (ext, (height, width), anns) in tree.items():
        image_path = images / f"{stem}{ext}"
        image_path.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(image_path), np.full((height, width, 3), 90, np.uint8))
        label_path = labels / f"{stem}.json"
        label_path.parent.mkdir(parents=True, exist_ok=True)
        label_path.write_text(json.dumps({"annotations": anns, "filename": Path(stem).name, "metadata": {}}))
    return labels, images


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    return make_tree(tmp_path)


def test_images_ids_and_folders(tree: tuple[Path, Path]) -> None:
    coco = polygon_json_to_coco(*tree)
    assert [img["id"] for img in coco["images"]] == [1, 2, 3, 4]
    assert [img["file_name"] for img in coco["images"]] == [
        "ID001/image1661130828152_R.png",
        "ID001/image1661130891365_L.png",
        "ID002/image1661144206667_R.jpg",
        "ID002/image1661144246917_L.png",
    ]
    assert [img["attributes"]["folder"] for img in coco["images"]] == ["ID001", "ID001", "ID002", "ID002"]
    assert [(img["width"], img["height"]) for img in coco["images"]] == [(300, 200)] * 2 + [(160, 120)] * 2
    assert coco["info"] == {"description": "converted from per-image polygon JSON by datatools"}
    assert coco["licenses"] == []


def test_categories_in_first_appearance_order(tree: tuple[Path, Path]) -> None:
    coco = polygon_json_to_coco(*tree)
    assert coco["categories"] == [
        {"id": 1, "name": "finger-2", "supercategory": ""},
        {"id": 2, "name": "Trapezoid", "supercategory": ""},
        {"id": 3, "name": "finger-1", "supercategory": ""},
    ]


def test_categories_follow_given_classes(tree: tuple[Path, Path]) -> None:
    classes = ["finger-1", "finger-2", "finger-3", "Trapezoid"]
    coco = polygon_json_to_coco(*tree, classes=classes)
    assert [(c["id"], c["name"]) for c in coco["categories"]] == list(enumerate(classes, start=1))
    assert [a["category_id"] for a in coco["annotations"]] == [2, 4, 1, 4, 2]


def test_label_not_in_classes_raises(tree: tuple[Path, Path]) -> None:
    with pytest.raises(InvalidDatasetError, match=r"image1661130828152_R\.json.*'Trapezoid'"):
        polygon_json_to_coco(*tree, classes=["finger-1", "finger-2"])


def test_annotations(tree: tuple[Path, Path]) -> None:
    coco = polygon_json_to_coco(*tree)
    anns = coco["annotations"]
    assert [a["id"] for a in anns] == [1, 2, 3, 4, 5]
    assert [a["image_id"] for a in anns] == [1, 1, 2, 3, 3]
    rect = anns[0]
    assert rect["segmentation"] == [[10, 20, 110, 20, 110, 70, 10, 70]]
    assert rect["area"] == pytest.approx(5000.0)
    assert isinstance(rect["area"], float)
    assert rect["bbox"] == [10, 20, 100, 50]
    assert rect["iscrowd"] == 0
    assert rect["attributes"] == {"type": "poly_seg", "attributes": {"occluded": False}}
    assert anns[1]["area"] == pytest.approx(400.0)
    assert anns[1]["bbox"] == pytest.approx([5.5, 5.0, 20.0, 40.0])
    assert anns[4]["attributes"] == {}


def test_conversion_is_deterministic(tree: tuple[Path, Path]) -> None:
    first = json.dumps(polygon_json_to_coco(*tree))
    assert json.dumps(polygon_json_to_coco(*tree)) == first


def test_pycocotools_loads_and_rasterises(tree: tuple[Path, Path], tmp_path: Path) -> None:
    coco = polygon_json_to_coco(*tree)
    path = tmp_path / "annotations.json"
    path.write_text(json.dumps(coco))
    api = COCO(str(path))
    assert sorted(api.getImgIds()) == [1, 2, 3, 4]
    assert len(api.getAnnIds(imgIds=[1])) == 2
    ann = api.loadAnns([3])[0]  # the big polygon on image 2
    img = api.loadImgs([ann["image_id"]])[0]
    height, width = img["height"], img["width"]
    rle = mask_utils.merge(mask_utils.frPyObjects(ann["segmentation"], height, width))
    coco_mask = mask_utils.decode(rle).astype(bool)
    cv_mask = np.zeros((height, width), np.uint8)
    cv2.fillPoly(cv_mask, [np.array(BIG, np.int32)], 1)
    cv_mask = cv_mask.astype(bool)
    iou = (coco_mask & cv_mask).sum() / (coco_mask | cv_mask).sum()
    assert cv_mask.sum() > 20000
    assert iou > 0.95
    assert abs(coco_mask.sum() - ann["area"]) / ann["area"] < 0.05


def test_reverse_round_trip(tree: tuple[Path, Path], tmp_path: Path) -> None:
    labels, images = tree
    coco = polygon_json_to_coco(labels, images)
    out = tmp_path / "out"
    written = coco_to_polygon_json(coco, out)
    assert [p.relative_to(out).as_posix() for p in written] == [f"{stem}.json" for stem in TREE]
    for stem, (_, _, anns) in TREE.items():
        doc = json.loads((out / f"{stem}.json").read_text())
        assert doc == {
            "annotations": [{"label": a["label"], "points": a["points"], "type": "poly_seg"} for a in anns]
        }
    again = polygon_json_to_coco(out, images)
    assert again["images"] == coco["images"]
    assert again["categories"] == coco["categories"]
    strip = [{k: v for k, v in a.items() if k != "attributes"} for a in coco["annotations"]]
    assert [{k: v for k, v in a.items() if k != "attributes"} for a in again["annotations"]] == strip


def test_reverse_splits_multi_part_polygons(tmp_path: Path) -> None:
    coco = {
        "images": [{"id": 7, "file_name": "P1/x.png", "width": 10, "height": 10}],
        "categories": [{"id": 3, "name": "finger-1"}],
        "annotations": [
            {
                "id": 1,
                "image_id": 7,
                "category_id": 3,
                "segmentation": [[0, 0, 4, 0, 4, 4], [5, 5, 9, 5, 9, 9]],
            }
        ],
    }
    (path,) = coco_to_polygon_json(coco, tmp_path)
    assert path == tmp_path / "P1" / "x.json"
    doc = json.loads(path.read_text())
    assert [e["points"] for e in doc["annotations"]] == [[[0, 0], [4, 0], [4, 4]], [[5, 5], [9, 5], [9, 9]]]
    coco["images"][0]["file_name"] = "../escape.png"
    with pytest.raises(InvalidDatasetError, match="escapes"):
        coco_to_polygon_json(coco, tmp_path / "other")


def test_missing_image_names_the_json(tmp_path: Path) -> None:
    labels, images = make_tree(tmp_path)
    (images / "ID002" / "image1661144206667_R.jpg").unlink()
    with pytest.raises(InvalidDatasetError, match=r"image1661144206667_R\.json.*found none"):
        polygon_json_to_coco(labels, images)


def test_two_images_for_one_json_raises(tmp_path: Path) -> None:
    labels, images = make_tree(tmp_path)
    cv2.imwrite(str(images / "ID001" / "image1661130891365_L.jpg"), np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(InvalidDatasetError, match=r"image1661130891365_L\.json.*_L\.jpg, .*_L\.png"):
        polygon_json_to_coco(labels, images)


@pytest.mark.parametrize(
    "points",
    [
        [[0, 0], [5, 5]],
        [],
        [[0, 0], [5, float("nan")], [5, 0]],
        [[0, 0], [5, "7"], [5, 0]],
        [[0, 0], [5], [5, 0]],
        [[0, 0], [True, 1], [5, 0]],
        "0 0 5 5 5 0",
        None,
    ],
)
def test_bad_polygon_names_file_and_index(tmp_path: Path, points: Any) -> None:
    anns = [{"label": "a", "points": RECT}, {"label": "b", "points": points}]
    labels, images = make_tree(tmp_path, {"P9/img_0.1": (".png", (50, 50), anns)})
    with pytest.raises(InvalidDatasetError, match=r"img_0\.1\.json: annotations\[1\]"):
        polygon_json_to_coco(labels, images)


def test_invalid_json_is_unreadable(tmp_path: Path) -> None:
    labels, images = make_tree(tmp_path)
    (labels / "ID001" / "image1661130891365_L.json").write_text('{"annotations": [')
    with pytest.raises(UnreadableFileError, match=r"image1661130891365_L\.json"):
        polygon_json_to_coco(labels, images)


def test_empty_label_tree_names_the_folder(tmp_path: Path) -> None:
    (tmp_path / "labels").mkdir()
    (tmp_path / "images").mkdir()
    with pytest.raises(InvalidDatasetError, match="labels"):
        polygon_json_to_coco(tmp_path / "labels", tmp_path / "images")
    with pytest.raises(UnreadableFileError, match="nowhere"):
        polygon_json_to_coco(tmp_path / "nowhere", tmp_path / "images")

"""The torch Dataset: masks from the one rasteriser, cached or pre-rendered, ignore 255, mode detection."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools.core.errors import InvalidDatasetError  # noqa: E402
from datatools.core.masks import mask_to_rle, rasterize_multilabel, rasterize_semantic  # noqa: E402
from datatools.formats.mask_dir import coco_to_mask_dir  # noqa: E402
from datatools_train import data as data_module  # noqa: E402
from datatools_train.augment import build_transform, load_pipeline  # noqa: E402
from datatools_train.checkpoint import ModelSpec, load_checkpoint, model_from_checkpoint, save_checkpoint  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.data import (  # noqa: E402
    MaskSource,
    SegmentationData,
    check_same_classes,
    detect_mode,
    without_leaks,  # noqa: E402
)
from datatools_train.model import create_model  # noqa: E402

pytestmark = pytest.mark.train


def _with_ignore(ds: Dataset) -> Dataset:
    region = np.zeros((64, 64), bool)
    region[:8, :8] = True
    ds.images[0]["datatools"] = {"ignore": [mask_to_rle(region)]}
    return ds


def test_detect_mode(tiny_multiclass: tuple[Path, Path], tiny_multilabel: tuple[Path, Path]) -> None:
    assert detect_mode(Dataset.from_dir(tiny_multiclass[0])) is Mode.MULTICLASS
    assert detect_mode(Dataset.from_dir(tiny_multilabel[0])) is Mode.MULTILABEL


def test_items_are_the_rasterised_masks_cached_after_first_use(tiny_multiclass: tuple[Path, Path], tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    ds = _with_ignore(Dataset.from_dir(tiny_multiclass[0]))
    data = SegmentationData([MaskSource(ds, cache=tmp_path / "cache")], Mode.MULTICLASS,
                            build_transform(64, train=False))
    img = ds.images[0]
    expected = rasterize_semantic(ds.annotations_of(img["id"]), 64, 64, ds.class_map(),
                                  ignore=img["datatools"]["ignore"])
    x, y = data[0]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (3, 64, 64)
    assert y.dtype == torch.int64 and (y[:8, :8] == 255).all()
    np.testing.assert_array_equal(y.numpy(), expected)
    assert (tmp_path / "cache" / "ann_dir" / "img_00.png").is_file()

    def boom(*args, **kwargs):
        raise AssertionError("rasterised again")

    monkeypatch.setattr(data_module, "rasterize_semantic", boom)
    np.testing.assert_array_equal(data[0][1].numpy(), expected)  # served from the cache


def test_prerendered_mask_folder_is_read(tiny_multiclass: tuple[Path, Path], tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    ds = Dataset.from_dir(tiny_multiclass[0])
    coco_to_mask_dir(ds, tmp_path / "masks", workers=1, progress=False)
    monkeypatch.setattr(data_module, "rasterize_semantic", lambda *a, **k: pytest.fail("should read the folder"))
    data = SegmentationData([MaskSource(ds, prerendered=tmp_path / "masks")], Mode.MULTICLASS,
                            build_transform(64, train=False))
    img = ds.images[3]
    monkeypatch.undo()
    expected = rasterize_semantic(ds.annotations_of(img["id"]), 64, 64, ds.class_map())
    np.testing.assert_array_equal(data[3][1].numpy(), expected)


def test_multilabel_items_overlap_and_ignore_every_plane(tiny_multilabel: tuple[Path, Path], tmp_path: Path) -> None:
    ds = _with_ignore(Dataset.from_dir(tiny_multilabel[0]))
    data = SegmentationData([MaskSource(ds, cache=tmp_path)], Mode.MULTILABEL, build_transform(64, train=False))
    x, y = data[0]
    assert y.dtype == torch.float32 and tuple(y.shape) == (3, 64, 64)
    assert (y[:, :8, :8] == 255).all()
    planes = rasterize_multilabel(ds.annotations_of(ds.images[0]["id"]), 64, 64, ds.class_map())
    keep = np.ones((64, 64), bool)
    keep[:8, :8] = False
    np.testing.assert_array_equal(y.numpy()[:, keep] == 1, planes[:, keep])
    assert (planes.sum(axis=0) >= 2).any()
    assert data[0][1].equal(y)  # second read comes from the .npz cache


def test_training_augmentations_keep_image_and_mask_aligned(tiny_multiclass: tuple[Path, Path]) -> None:
    ds = Dataset.from_dir(tiny_multiclass[0])
    data = SegmentationData([MaskSource(ds)], Mode.MULTICLASS, build_transform(64, train=True, seed=3))
    for i in range(6):
        x, y = data[i]
        red = (x[0] > 150) & (x[1] < 120) & (x[2] < 120)  # the red square's pixels stay labelled red
        labelled_red = y == 1
        assert (red & labelled_red).sum() >= 0.8 * red.sum()
        assert set(torch.unique(y).tolist()) <= {0, 1, 2}


def test_aug_yaml(tmp_path: Path) -> None:
    (tmp_path / "aug.yaml").write_text("- VerticalFlip: {p: 1.0}\n- OneOf: {p: 1, transforms: [{Blur: {}}]}\n")
    assert [type(t).__name__ for t in load_pipeline(tmp_path / "aug.yaml")] == ["VerticalFlip", "OneOf"]
    (tmp_path / "bad.yaml").write_text("- NoSuchTransform: {}\n")
    with pytest.raises(InvalidDatasetError, match="not an albumentations transform"):
        load_pipeline(tmp_path / "bad.yaml")


def test_datasets_of_one_run_share_classes_and_extras_never_leak(tiny_multiclass: tuple[Path, Path]) -> None:
    train = Dataset.from_dir(tiny_multiclass[0])
    val = Dataset.from_dir(tiny_multiclass[1])
    other = Dataset.from_dir(tiny_multiclass[1])
    other.categories[0]["name"] = "green"
    with pytest.raises(InvalidDatasetError, match="categories"):
        check_same_classes(train, other)
    extra = Dataset.from_dir(tiny_multiclass[0])
    extra.images[0]["datatools"] = {"op": "mosaic", "sources": [{"file_name": val.images[0]["file_name"]}]}
    kept = without_leaks(extra, val, lambda msg: None)
    assert [i["id"] for i in kept.images] == [i["id"] for i in extra.images[1:]]


def test_checkpoint_rebuilds_the_model(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = create_model("FPN", "resnet18", classes=3).eval()
    classes = ({"value": 0, "category_id": None, "name": "background", "color": [0, 0, 0]},
               {"value": 1, "category_id": 7, "name": "a", "color": [128, 0, 0]},
               {"value": 2, "category_id": 9, "name": "b", "color": [0, 128, 0]})
    spec = ModelSpec("FPN", "resnet18", classes, Mode.MULTICLASS, (0.5, 0.5, 0.5), (0.2, 0.2, 0.2), 64)
    save_checkpoint(tmp_path / "c.pt", spec, model, epoch=3)
    rebuilt, got = model_from_checkpoint(load_checkpoint(tmp_path / "c.pt"))
    assert got == spec and got.num_outputs == 3 and [c.name for c in got.class_map().classes] == ["a", "b"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(rebuilt(x), model(x))


def test_cli_help_examples_and_no_torch_at_start() -> None:
    runner = CliRunner()
    for command in ("fit", "evaluate", "predict", "soup"):
        result = runner.invoke(app, ["train", command, "--help"], terminal_width=200)
        assert result.exit_code == 0 and f"datatools train {command}" in result.output
    code = ("import sys\nfrom datatools.cli.main import app\n"
            "try:\n    app(['train', 'fit', '--help'])\nexcept SystemExit:\n    pass\n"
            "assert 'torch' not in sys.modules\nprint('clean')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and out.stdout.strip().endswith("clean"), out.stderr
    out = subprocess.run([sys.executable, "-m", "train", "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "soup" in out.stdout


def test_cli_bad_input_is_one_line_exit_2(tiny_multiclass: tuple[Path, Path], tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "fit", "--data", str(tiny_multiclass[0]), "--out", str(tmp_path / "r"),
                                      "--size", "100"])
    assert result.exit_code == 2 and "multiple of 32" in result.output
    result = CliRunner().invoke(app, ["train", "evaluate", "--ckpt", str(tmp_path / "none.pt"), "--data",
                                      str(tiny_multiclass[1]), "--out", str(tmp_path / "e")])
    assert result.exit_code == 2 and "checkpoint not found" in result.output
    assert not (tmp_path / "e").exists()

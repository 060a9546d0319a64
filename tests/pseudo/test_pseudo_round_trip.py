"""Round trip with a real (tiny) model: pseudo-label --ckpt through the trainer's predict path, the result passes
validate, loads in pycocotools, trains with ``train fit --extra`` (and ``--merge-with`` output with ``--data``
alone), and its ignore pixels add nothing to the loss."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))  # the trainer tests' tiny shapes

from pseudo_fixtures import reference_multiclass  # noqa: E402
from pycocotools.coco import COCO  # noqa: E402
from tiny_shapes import write_dataset  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dataset import Dataset  # noqa: E402
from datatools.core.masks import rasterize_semantic, rle_to_mask  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.data import MaskSource, SegmentationData  # noqa: E402
from datatools_train.ensemble import Ensemble, items_from_dataset  # noqa: E402
from datatools_train.losses import build_loss  # noqa: E402
from datatools_train.tta import TTA  # noqa: E402

pytestmark = pytest.mark.train
runner = CliRunner()
FAST = ["--encoder", "resnet18", "--weights", "none", "--size", "64", "--batch", "4", "--lr", "1e-3",
        "--workers", "0", "--no-progress"]


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"{result.output}\n{result.exception!r}"
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """(labelled train folder, unlabelled folder, best.pt) of a 2-epoch model of the multiclass shapes."""
    root = tmp_path_factory.mktemp("pseudo_rt")
    train = write_dataset(root / "train", 16, multilabel=False)
    unlabelled = write_dataset(root / "unlabelled", 6, multilabel=False, seed=1)
    run("train", "fit", "--data", str(train), "--epochs", "2", "--out", str(root / "run"), *FAST)
    return train, unlabelled, root / "run" / "best.pt"


def test_ckpt_labels_are_the_rule_on_the_predict_path_and_the_dataset_round_trips(
        trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    train, unlabelled, ckpt = trained
    pseudo = tmp_path / "pseudo"
    run("pseudo-label", "--ckpt", str(ckpt), "--ckpt", str(ckpt), "--tta", "hflip", "--data", str(unlabelled),
        "--threshold", "0.6", "--min-area", "4", "--out", str(pseudo), "--workers", "0", "--no-progress")
    out = Dataset.from_dir(pseudo)
    ens = Ensemble([ckpt, ckpt], "cpu")
    preds = list(ens.predictions(items_from_dataset(Dataset.from_dir(unlabelled)), tta=TTA.parse("hflip"),
                                 workers=0))
    ignored = 0
    for img, pred in zip(out.images, preds, strict=True):
        want = reference_multiclass(pred.full.numpy(), np.full(3, 0.6, np.float32), 4)
        got = rasterize_semantic(out.annotations_of(img["id"]), 64, 64, out.class_map(),
                                 ignore=img["datatools"].get("ignore", []))
        np.testing.assert_array_equal(got, want)
        ignored += int((want == 255).sum())
        params = img["datatools"]["params"]["predictions"]
        assert params["tta"]["views"] == ["identity", "hflip"] and len(params["ckpts"]) == 2
        assert len(params["ckpts"][0]["sha256"]) == 64
    assert ignored > 0
    # validate, pycocotools, and training with the pseudo set as --extra
    assert run("validate", "--data", str(pseudo)).exit_code == 0
    coco = COCO(str(pseudo / "annotations.json"))
    assert len(coco.getImgIds()) == 6 and all(coco.annToMask(a).sum() == a["area"] for a in coco.dataset["annotations"])
    run("train", "fit", "--data", str(train), "--extra", str(pseudo), "--epochs", "1", "--out", str(tmp_path / "r"),
        *FAST)
    assert (tmp_path / "r" / "best.pt").is_file()


def test_saved_probabilities_give_the_labels_of_the_checkpoint(trained: tuple[Path, Path, Path],
                                                               tmp_path: Path) -> None:
    _, unlabelled, ckpt = trained
    run("train", "predict", "--ckpt", str(ckpt), "--images", str(unlabelled / "images"), "--save-probs",
        "--probs-dtype", "float16", "--out", str(tmp_path / "pred"), "--workers", "0", "--no-progress")
    common = ["--images", str(unlabelled / "images"), "--threshold", "0.7", "--no-progress"]
    run("pseudo-label", "--ckpt", str(ckpt), *common, "--out", str(tmp_path / "a"), "--workers", "0")
    run("pseudo-label", "--probs", str(tmp_path / "pred"), *common, "--out", str(tmp_path / "b"), "--workers", "1")
    a, b = Dataset.from_dir(tmp_path / "a"), Dataset.from_dir(tmp_path / "b")
    assert [i["file_name"] for i in a.images] == [i["file_name"] for i in b.images]
    assert a.categories == b.categories == [{"id": 11, "name": "red"}, {"id": 12, "name": "blue"}]
    same = total = 0
    for ia, ib in zip(a.images, b.images, strict=True):
        ma = rasterize_semantic(a.annotations_of(ia["id"]), 64, 64, a.class_map(),
                                ignore=ia["datatools"].get("ignore", []))
        mb = rasterize_semantic(b.annotations_of(ib["id"]), 64, 64, b.class_map(),
                                ignore=ib["datatools"].get("ignore", []))
        same += int((ma == mb).sum())
        total += ma.size
    assert same / total > 0.995  # float16 storage may move a pixel across the threshold


def test_ignore_pixels_add_nothing_to_the_loss(trained: tuple[Path, Path, Path], tmp_path: Path) -> None:
    _, unlabelled, ckpt = trained
    run("pseudo-label", "--ckpt", str(ckpt), "--data", str(unlabelled), "--threshold", "0.8", "--out",
        str(tmp_path / "p"), "--workers", "0", "--no-progress")
    ds = Dataset.from_dir(tmp_path / "p")
    data = SegmentationData([MaskSource(ds)], Mode.MULTICLASS, lambda image, mask: {"image": image, "mask": mask})
    targets = torch.stack([data[i][1] for i in range(len(data))])
    ignore = torch.stack([torch.from_numpy(rle_to_mask(img["datatools"]["ignore"][0])) for img in ds.images])
    assert bool(ignore.any()) and torch.equal(targets == 255, ignore)
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(len(data), 3, 64, 64, generator=g, requires_grad=True)
    loss = build_loss("ce+dice", Mode.MULTICLASS)
    value = loss(logits, targets)
    value.backward()
    assert logits.grad is not None
    assert float(logits.grad.permute(1, 0, 2, 3)[:, ignore].abs().sum()) == 0.0
    assert float(logits.grad.permute(1, 0, 2, 3)[:, ~ignore].abs().sum()) > 0.0
    changed = logits.detach().clone().permute(1, 0, 2, 3)
    changed[:, ignore] = torch.randn(3, int(ignore.sum()), generator=g) * 10
    assert float(loss(changed.permute(1, 0, 2, 3), targets)) == pytest.approx(float(value.detach()), rel=1e-6)


def test_merge_with_writes_one_dataset_that_trains_with_data_alone(trained: tuple[Path, Path, Path],
                                                                   tmp_path: Path) -> None:
    train, unlabelled, ckpt = trained
    merged = tmp_path / "merged"
    run("pseudo-label", "--ckpt", str(ckpt), "--images", str(unlabelled / "images"), "--merge-with", str(train),
        "--threshold", "0.6", "--out", str(merged), "--workers", "0", "--no-progress", "--link")
    ds, labelled = Dataset.from_dir(merged), Dataset.from_dir(train)
    assert len(ds.images) == 22
    assert ds.images[:16] == labelled.images and ds.annotations[:len(labelled.annotations)] == labelled.annotations
    ids = [i["id"] for i in ds.images]
    assert len(set(ids)) == 22 and len({a["id"] for a in ds.annotations}) == len(ds.annotations)
    assert all(i["file_name"].startswith("pseudo/") and i["datatools"]["op"] == "pseudo-label" for i in ds.images[16:])
    assert run("validate", "--data", str(merged)).exit_code == 0
    summary = json.loads((merged / "summary.json").read_text())
    assert summary["written"] == 6 and summary["merged_with"]
    run("train", "fit", "--data", str(merged), "--epochs", "1", "--out", str(tmp_path / "r"), *FAST)

"""Every data command on a dataset built to break labels and id assumptions (issue 11's sweep).

The dataset: two categories with the same name, the Roboflow placeholder (id 0, no annotations), non-ASCII and
markup-like names (Rich ``[bold]``, matplotlib ``$...$`` and a legend-hiding leading ``_``), 60 categories in all,
and image ids that are not 0..N-1. Each command must exit 0, or fail with exactly one ``error:`` line (exit 2);
never a traceback.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"
N_IMAGES = 12
#: the example's classes 1..4 become these (id, name): a duplicate name, non-ASCII, markup-like names
RENAMED = {1: (101, "Blood bag"), 2: (205, "Blood bag"), 3: (7, "ampoule ü 注射器 [bold]x[/bold]"),
           4: (9999, "_syringe $5 to $10")}


def _odd_coco() -> dict:
    src = json.loads((EXAMPLE / "_annotations.coco.json").read_text())
    images = sorted(src["images"], key=lambda i: i["file_name"])[:N_IMAGES]
    new_ids = {img["id"]: 7 + 1009 * k for k, img in enumerate(images)}  # 7, 1016, 2025, ... not 0..N-1
    categories = [{"id": 0, "name": "medical-waste", "supercategory": "none"}]
    categories += [{"id": cid, "name": name, "supercategory": "medical-waste"} for cid, name in RENAMED.values()]
    categories += [{"id": 20000 + k, "name": f"unused class {k} / ünïcode", "supercategory": "medical-waste"}
                   for k in range(60 - len(categories))]
    annotations = [dict(a, image_id=new_ids[a["image_id"]], category_id=RENAMED[a["category_id"]][0])
                   for a in src["annotations"] if a["image_id"] in new_ids]
    return dict(src, images=[dict(i, id=new_ids[i["id"]]) for i in images], categories=categories,
                annotations=annotations)


@pytest.fixture(scope="module")
def odd(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("odd")
    coco = _odd_coco()
    (root / "images").mkdir()
    for img in coco["images"]:
        shutil.copy(EXAMPLE / img["file_name"], root / "images" / img["file_name"])
    (root / "annotations.json").write_text(json.dumps(coco, ensure_ascii=False))
    assert len(coco["categories"]) == 60
    return root


def _run(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, COLUMNS="100")
    return subprocess.run([sys.executable, "-m", "datatools", *map(str, args)], cwd=cwd, capture_output=True,
                          text=True, timeout=600, env=env)


def _assert_clean(result: subprocess.CompletedProcess[str], allowed: tuple[int, ...] = (0,)) -> None:
    out = result.stdout + result.stderr
    assert "Traceback" not in out
    if result.returncode == 2:
        lines = [line for line in result.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if line.startswith("error:")]
        assert len(errors) == 1, result.stderr
    else:
        assert result.returncode in allowed


def _data(odd: Path) -> list[str | Path]:
    return ["--ann", odd / "annotations.json", "--images", odd / "images"]


STEPS: list[tuple[str, list[str], tuple[int, ...]]] = [
    ("validate", ["validate", "{data}"], (0,)),
    ("convert masks", ["convert", "masks", "{data}", "--out", "{out}/masks", "--workers", "1"], (0,)),
    ("convert coco", ["convert", "coco", "{data}", "--out", "{out}/coco", "--reindex"], (0,)),
    ("eda", ["eda", "{data}", "--out", "{out}/eda", "--workers", "1", "--train-size", "64"], (0,)),
    ("eda --compare", ["eda", "{data}", "--out", "{out}/eda_compare", "--workers", "1", "--compare", "again={odd}"],
     (0,)),
    ("folds", ["folds", "{data}", "--k", "3", "--seed", "1", "--out", "{out}/folds"], (0,)),
    ("folds check", ["folds", "check", "--folds", "{out}/folds/folds.parquet", "{data}"], (0, 1)),
    ("augment mosaic", ["augment", "mosaic", "{data}", "-n", "4", "--size", "256", "--seed", "0", "--workers",
                        "1", "--out", "{out}/mosaic"], (0,)),
    ("augment copy-paste", ["augment", "copy-paste", "{data}", "--rare", "auto", "--seed", "0", "--workers", "1",
                            "--out", "{out}/copy_paste"], (0,)),
    ("augment flip", ["augment", "flip", "{data}", "--workers", "1", "--out", "{out}/flip"], (0,)),
    ("edit classes", ["edit", "classes", "{data}", "--drop", "id:205", "--merge", "blood=Blood bag,id:7",
                      "--drop-empty", "--reindex", "--out", "{out}/edit_classes"], (0,)),
    ("edit merge", ["edit", "merge", "{data}", "{data}", "--out", "{out}/edit_merge"], (0,)),
    ("edit split", ["edit", "split", "{data}", "--ratios", "0.5,0.5", "--out", "{out}/edit_split"], (0,)),
    ("edit subset", ["edit", "subset", "{data}", "--has-class", "_syringe $5 to $10", "--out", "{out}/edit_subset"],
     (0,)),
    ("train fit", ["train", "fit", "{data}", "--arch", "Unet", "--encoder", "resnet18", "--weights", "none",
                   "--size", "64", "--epochs", "1", "--batch", "12", "--workers", "0", "--out", "{out}/run"], (0,)),
    ("pseudo-label", ["pseudo-label", "--ckpt", "{out}/run/best.pt", "{data}", "--threshold", "0.3", "--workers",
                      "0", "--out", "{out}/pseudo"], (0,)),
    ("validate pseudo", ["validate", "--data", "{out}/pseudo"], (0,)),
    ("clean", ["clean", "{data}", "--workers", "1", "--gallery", "2", "--apply", "--out", "{out}/clean"], (0,)),
    ("clean --ckpt", ["clean", "{data}", "--checks", "outliers", "--ckpt", "{out}/run/best.pt", "--device", "cpu",
                      "--workers", "1", "--gallery", "2", "--out", "{out}/clean_ckpt"], (0,)),
    ("train evaluate", ["train", "evaluate", "--ckpt", "{out}/run/best.pt", "{data}", "--workers", "0", "--out",
                        "{out}/ev"], (0,)),
    ("train compare", ["train", "compare", "{out}/ev", "{out}/ev", "--out", "{out}/cmp"], (0,)),
]


@pytest.mark.train
def test_every_data_command_survives_odd_classes_and_ids(odd: Path, tmp_path: Path) -> None:
    data = [str(x) for x in _data(odd)]
    failures: list[str] = []
    for name, template, allowed in STEPS:
        args: list[str] = []
        for part in template:
            if part == "{data}":
                args += data if name != "folds check" else ["--images", data[3]]
            else:
                args.append(part.replace("{out}", str(tmp_path)).replace("{odd}", str(odd)))
        result = _run(*args, cwd=tmp_path)
        try:
            _assert_clean(result, allowed)
        except AssertionError:
            failures.append(f"--- {name} (exit {result.returncode}):\n{(result.stdout + result.stderr)[-1500:]}")
    assert not failures, "\n".join(failures)

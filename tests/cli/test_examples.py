"""Every command line shown in README.md and in the commands' --help runs (issue 11 item 12).

Each example is taken from its source as written, then made runnable on the bundled example data:

- README notation: ``[--opt X]`` is included, ``a|b|c`` takes the first choice (``imagenet|none|PATH`` takes
  ``none``: there is no network), ``POLICY`` is ``smaller-on-top`` and ``N`` is 2.
- Placeholder paths (``train.json``, ``data/``, ``ds/``, ``folds/folds.parquet``, ``runs/a/best.pt``, ...) are
  made once, in a workspace, from examples/medical_waste (45 training images, 640x640); every example then runs in
  a fresh folder that links to the workspace, so its ``--out`` is always new.
- To stay fast, a few values are made small: ``-n``/``--count`` 4,
  ``--copies`` 1, copy-paste at most 4 images (``-n 4``), and ``train fit`` always runs with ``--epochs 1 --size 64
  --weights none`` (no network) and DataLoader ``--workers 0``. The train examples run fully on these tiny
  settings (not only their argument parsing); they are skipped without torch.

A failing example is a broken promise of the docs: fix the command or the example.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.main import get_command
from typer.testing import CliRunner

from datatools.cli.main import app

ROOT = Path(__file__).parents[2]
EXAMPLE = ROOT / "examples" / "medical_waste"
runner = CliRunner()

# ---- finding the examples ----------------------------------------------------------------------------------------


def _join_continuations(lines: list[str]) -> Iterator[str]:
    current = ""
    for line in lines:
        current += " " + re.sub(r"\s+#.*$", "", line.strip())  # a shell comment
        if current.endswith("\\"):
            current = current[:-1]
            continue
        yield " ".join(current.split())
        current = ""


def readme_examples() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    found = []
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for command in _join_continuations(block.splitlines()):
            found += [c.strip() for c in command.split(";") if c.strip().startswith("datatools ")]
    return found


def _walk(command: object, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], object]]:
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _walk(sub, (*path, name))


def help_examples() -> list[str]:
    found = []
    for _, command in _walk(get_command(app)):
        lines = (getattr(command, "help", None) or "").splitlines()
        if "Example:" in [ln.strip() for ln in lines]:
            start = [ln.strip() for ln in lines].index("Example:")
            found += [c for c in _join_continuations([ln for ln in lines[start + 1:] if ln.strip()])
                      if c.startswith("datatools ")]
    return found


# ---- making an example runnable ------------------------------------------------------------------------------------

CHOICES = {"imagenet|none|PATH": "none"}
PLACEHOLDERS = {"POLICY": "smaller-on-top", "N": "2"}
SMALL = {"-n": "4", "--count": "4", "--copies": "1"}
TRAIN_FIT_SMALL = {"--epochs": "1", "--size": "64", "--weights": "none", "--workers": "0"}


def runnable(example: str) -> list[str]:
    """The example's arguments after ``datatools``, notation resolved and costs made small."""
    tokens = shlex.split(example)[1:]
    args = []
    for token in tokens:
        token = token.removeprefix("[").removesuffix("]")
        if token in CHOICES:
            token = CHOICES[token]
        elif re.fullmatch(r"[\w+.-]+(\|[\w+.-]+)+", token):
            token = token.split("|")[0]
        args.append(PLACEHOLDERS.get(token, token))
    small = {**SMALL, **(TRAIN_FIT_SMALL if args[:2] == ["train", "fit"] else {})}
    for i, arg in enumerate(args[:-1]):
        if arg in small:
            args[i + 1] = small[arg]
    for option, value in (TRAIN_FIT_SMALL.items() if args[:2] == ["train", "fit"] else ()):
        if option not in args:
            args += [option, value]
    if args[:2] == ["augment", "copy-paste"] and "-n" not in args:
        args += ["-n", "4"]
    return args


EXAMPLES = sorted(set(readme_examples()) | set(help_examples()))


def test_examples_are_found() -> None:
    readme, helps = readme_examples(), help_examples()
    assert len(readme) >= 20 and len(helps) >= 20
    for command in ("validate", "convert masks", "eda", "folds", "folds check", "augment mosaic", "train fit",
                    "train soup"):
        assert any(e.startswith(f"datatools {command} ") for e in readme), command
        assert any(e.startswith(f"datatools {command} ") for e in helps), command
    assert runnable("datatools train fit --weights imagenet|none|PATH --size 512 [--workers N]")[2:] == [
        "--weights", "none", "--size", "64", "--workers", "0", "--epochs", "1"]


# ---- the workspace ---------------------------------------------------------------------------------------------------


def _invoke(*args: str) -> None:
    result = runner.invoke(app, [*args])
    assert result.exit_code == 0, f"{args}: {result.output}"


def _link_images(src: Path, dst: Path, names: list[str]) -> None:
    dst.mkdir(parents=True, exist_ok=True)
    for name in names:
        (dst / name).symlink_to(src / name)


GROUP = re.compile(r"^(.*)_(jpg|jpeg|png)\.rf\.")


def _small_training_set(path: Path) -> dict[str, Any]:
    """The bundled training set cut to whole Roboflow groups (a picture and its augmented copies): the first
    groups in name order until 6 groups and every class are in (about 17 images), to keep the examples fast."""
    coco = json.loads(path.read_text())
    by_group: dict[str, list[dict[str, Any]]] = {}
    for img in coco["images"]:
        by_group.setdefault(GROUP.match(img["file_name"]).group(1), []).append(img)  # type: ignore[union-attr]
    classes_of = {img["id"]: set() for img in coco["images"]}
    for a in coco["annotations"]:
        classes_of[a["image_id"]].add(a["category_id"])
    wanted = {a["category_id"] for a in coco["annotations"]}
    images: list[dict[str, Any]] = []
    for name in sorted(by_group):
        if len(images) >= 15 and wanted <= set().union(*(classes_of[i["id"]] for i in images)):
            break
        images += by_group[name]
    keep = {i["id"] for i in images}
    return {**coco, "images": [i for i in coco["images"] if i["id"] in keep],
            "annotations": [a for a in coco["annotations"] if a["image_id"] in keep]}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every input the examples name, made from examples/medical_waste."""
    ws = tmp_path_factory.mktemp("examples")
    small = _small_training_set(EXAMPLE / "train" / "_annotations.coco.json")
    train_ann, valid_ann = ws / "train.json", EXAMPLE / "valid" / "_annotations.coco.json"
    train_ann.write_text(json.dumps(small))
    train_names = [i["file_name"] for i in small["images"]]
    valid = json.loads(valid_ann.read_text())
    # --ann train.json --images data/ ; data/train.json ; export.json, export/ ; train/ and valid/ as exported
    _link_images(EXAMPLE / "train", ws / "data", train_names)
    for target in ("data/train.json", "export.json", "train/_annotations.coco.json",
                   "export/_annotations.coco.json"):
        (ws / target).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(train_ann, ws / target)
    _link_images(EXAMPLE / "train", ws / "export", train_names)
    _link_images(EXAMPLE / "train", ws / "train", train_names)
    _link_images(EXAMPLE / "valid", ws / "valid", [i["file_name"] for i in valid["images"]])
    shutil.copyfile(valid_ann, ws / "valid" / "_annotations.coco.json")
    # --data train/ and --data ds/ (datatools folders; train/ also keeps the export layout above)
    _invoke("convert", "coco", "--ann", str(train_ann), "--images", str(EXAMPLE / "train"), "--out", str(ws / "ds"),
            "--workers", "1", "--no-progress")
    shutil.copyfile(ws / "ds" / "annotations.json", ws / "train" / "annotations.json")
    (ws / "train" / "images").symlink_to(ws / "ds" / "images")
    # folds
    _invoke("folds", "--ann", str(ws / "train.json"), "--k", "5", "--seed", "42", "--out", str(ws / "folds"),
            "--group-by", r"regex:^(.*)_(jpg|jpeg|png)\.rf\.", "--no-progress")
    shutil.copyfile(ws / "folds" / "folds.parquet", ws / "folds.parquet")
    # mask folders: masks/ (the training set), pred/ (3 test images) and its classes.json and submission CSVs
    _invoke("convert", "masks", "--ann", str(train_ann), "--images", str(EXAMPLE / "train"), "--out",
            str(ws / "masks"), "--workers", "1", "--no-progress")
    test = {**valid, "images": valid["images"][:3]}
    test["annotations"] = [a for a in valid["annotations"] if a["image_id"] in {i["id"] for i in test["images"]}]
    (ws / "test.json").write_text(json.dumps(test))
    _link_images(EXAMPLE / "valid", ws / "test", [i["file_name"] for i in test["images"]])
    _invoke("convert", "masks", "--ann", str(ws / "test.json"), "--images", str(ws / "test"), "--out",
            str(ws / "pred"), "--no-copy-images", "--workers", "1", "--no-progress")
    _results_file(ws / "test.json", ws / "coco_instances_results.json")
    shutil.copyfile(ws / "pred" / "classes.json", ws / "classes.json")
    for csv in ("submission.csv", "output.csv"):
        _invoke("convert", "submission", "--masks", str(ws / "pred"), "--style", "rle", "--out", str(ws / csv))
    # meta.xlsx (key ID: the file name), pipeline.yaml, aug/ (an augmented dataset for fit --extra)
    import albumentations as A
    import pandas as pd

    pd.DataFrame({"ID": train_names, "site": [n[:3] for n in train_names]}).to_excel(ws / "meta.xlsx", index=False)
    A.save(A.Compose([A.HorizontalFlip(p=1.0)]), str(ws / "pipeline.yaml"), data_format="yaml")
    _invoke("augment", "flip", "--data", str(ws / "ds"), "--out", str(ws / "aug"), "--folds",
            str(ws / "folds.parquet"), "--fold", "0", "--workers", "1", "--no-progress")
    # polygon JSON: DCM/<patient>/<image> and outputs_json/<patient>/<stem>.json (also under train/), xray/
    from datatools.core.dataset import Dataset
    from datatools.formats.polygon_json import coco_to_polygon_json, polygon_json_to_coco

    coco = json.loads(train_ann.read_text())
    coco["images"] = coco["images"][:4]
    for k, img in enumerate(coco["images"]):
        name = img["file_name"]
        img["file_name"] = f"ID00{k // 2}/{name}"
        for root in (ws / "DCM", ws / "train" / "DCM"):
            (root / f"ID00{k // 2}").mkdir(parents=True, exist_ok=True)
            (root / img["file_name"]).symlink_to(EXAMPLE / "train" / name)
    coco["annotations"] = [a for a in coco["annotations"] if a["image_id"] in {i["id"] for i in coco["images"]}]
    coco_to_polygon_json(coco, ws / "outputs_json")
    shutil.copytree(ws / "outputs_json", ws / "train" / "outputs_json")
    Dataset(polygon_json_to_coco(ws / "outputs_json", ws / "DCM"), ws / "DCM").save(ws / "xray")
    # clean/dataset (the clean -> folds -> train loop)
    _invoke("clean", "--ann", str(train_ann), "--images", str(ws / "data"), "--out", str(ws / "clean"), "--apply",
            "--workers", "1", "--no-progress")
    _invoke("folds", "--data", str(ws / "clean" / "dataset"), "--k", "5", "--seed", "42", "--out",
            str(ws / "clean_folds"), "--no-progress")
    return ws


def _results_file(ann: Path, out: Path) -> None:
    """A detectron2-style COCO results file of ``ann``'s objects: RLE masks with scores, half of them confident."""
    from pycocotools.coco import COCO

    coco = COCO(str(ann))
    results = []
    for k, a in enumerate(coco.loadAnns(coco.getAnnIds())):
        rle = coco.annToRLE(a)
        results.append({"image_id": a["image_id"], "category_id": a["category_id"], "score": 0.95 if k % 2 else 0.5,
                        "segmentation": {"size": rle["size"], "counts": rle["counts"].decode("ascii")}})
    out.write_text(json.dumps(results))


@pytest.fixture(scope="module")
def checkpoints(workspace: Path) -> Path:
    """runs/a, runs/b and runs/r34_f0 with a best.pt each: one tiny model trained on ds/ (torch needed); its
    evaluations eval_a/ and eval_b/."""
    pytest.importorskip("torch")
    pytest.importorskip("segmentation_models_pytorch")
    run = workspace / "runs" / "a"
    _invoke("train", "fit", "--data", str(workspace / "ds"), "--folds", str(workspace / "folds.parquet"), "--out",
            str(run), "--encoder", "resnet18", "--weights", "none", "--size", "64", "--epochs", "1", "--workers", "0",
            "--no-progress")
    for other in ("b", "r34_f0"):
        (workspace / "runs" / other).mkdir()
        shutil.copyfile(run / "best.pt", workspace / "runs" / other / "best.pt")
    # eval_a/ and eval_b/ for train compare: the model on the 3 test images
    _invoke("train", "evaluate", "--ckpt", str(run / "best.pt"), "--ann", str(workspace / "test.json"), "--images",
            str(workspace / "test"), "--out", str(workspace / "eval_a"), "--workers", "0", "--no-progress")
    shutil.copytree(workspace / "eval_a", workspace / "eval_b")
    # saved probabilities (pred_a/, pred_b/ of test/; oof_probs/ of data/), pseudo/ and labelled/ for fit --extra
    for name in ("pred_a", "pred_b"):
        _invoke("train", "predict", "--ckpt", str(run / "best.pt"), "--images", str(workspace / "test"), "--save-probs",
                "--out", str(workspace / name), "--workers", "0", "--no-progress")
    _invoke("train", "predict", "--ckpt", str(run / "best.pt"), "--ann", str(workspace / "train.json"), "--images",
            str(workspace / "data"), "--save-probs", "--out", str(workspace / "oof_probs"), "--workers", "0",
            "--no-progress")
    _invoke("pseudo-label", "--probs", str(workspace / "pred_a"), "--images", str(workspace / "test"), "--out",
            str(workspace / "pseudo"), "--threshold", "0.5", "--no-progress")
    (workspace / "labelled").symlink_to(workspace / "ds")
    return workspace / "runs"


# ---- running them ----------------------------------------------------------------------------------------------------

VERDICT_EXIT_1 = {("validate",), ("folds", "check")}  # exit 1 is their verdict (errors found, leaks found)


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs(example: str, workspace: Path, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    args = runnable(example)
    if args[0] in ("train", "pseudo-label") or "--probs" in args:
        request.getfixturevalue("checkpoints")
    out = args[args.index("--out") + 1] if "--out" in args else None
    skip = Path(out).parts[0] if out else None
    for entry in workspace.iterdir():
        if entry.name != skip:
            (tmp_path / entry.name).symlink_to(entry)
    redirect = ""
    if ">" in args:  # validate --json > issues.json
        redirect = " > " + shlex.quote(args[args.index(">") + 1])
        args = args[: args.index(">")]
    words = [sys.executable, "-m", "datatools", *args]
    # the shell expands file patterns (runs/*/best.pt); everything else is quoted
    command = " ".join(w if re.fullmatch(r"[\w./-]*\*[\w./*-]*", w) else shlex.quote(w) for w in words) + redirect
    env = {**os.environ, "COLUMNS": "120", "OMP_NUM_THREADS": "2"}
    proc = subprocess.run(["bash", "-c", command], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env=env)
    output = proc.stdout + proc.stderr
    assert "Traceback" not in output, output
    allowed = (0, 1) if tuple(args[:2]) in VERDICT_EXIT_1 or tuple(args[:1]) in VERDICT_EXIT_1 else (0,)
    assert proc.returncode in allowed, f"{example}\n-> {command}\n{output}"
    if proc.returncode == 1:
        assert "error:" not in proc.stderr, output
    if out and not redirect:
        assert (tmp_path / out).exists(), f"{example}: nothing written to {out}"


# ---- the folds regexes of the docs group the data's own file names -------------------------------------------------


def _doc_regexes() -> list[str]:
    """Every ``--group-by`` regex of the README, the Makefile and the help texts (quoted either way)."""
    texts = [(ROOT / "README.md").read_text(encoding="utf-8"), (ROOT / "Makefile").read_text(encoding="utf-8"),
             *[getattr(c, "help", None) or "" for _, c in _walk(get_command(app))]]
    found = set()
    for text in texts:
        for a, b in re.findall(r"regex:'([^']+)'|'regex:([^']+)'", text):
            found.add(a or b)
    return sorted(found)


def _file_names(folder: Path) -> list[str]:
    ann = next(folder.glob("*.json"))
    return [i["file_name"] for i in json.loads(ann.read_text())["images"]]


def test_doc_regexes_are_found() -> None:
    assert len(_doc_regexes()) >= 1


@pytest.mark.parametrize("pattern", _doc_regexes())
def test_doc_folds_regex_matches_every_bundled_file(pattern: str) -> None:
    """The README's regex missed every `_png.rf.` and `_jpeg.rf.` copy (465 of the 512 shared images)."""
    for split in ("train", "valid"):
        names = _file_names(EXAMPLE / split)
        missed = [n for n in names if not re.search(pattern, n)]
        assert not missed, f"{pattern!r} misses {len(missed)} of {len(names)}: {missed[:3]}"


@pytest.mark.shared_data
@pytest.mark.parametrize("pattern", _doc_regexes())
def test_doc_folds_regex_matches_every_shared_file(pattern: str, shared_data: Path) -> None:
    for split in ("train", "valid", "test"):
        folder = shared_data / "medical_waste" / split
        if folder.is_dir():
            names = _file_names(folder)
            assert all(re.search(pattern, n) for n in names), f"{pattern!r} misses files of {folder}"

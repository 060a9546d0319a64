"""One definition of "rare" (issue 11 item 9): eda and augment (copy-paste ``--rare auto``, mosaic / ricap
``--prefer auto``) pick the same classes with the same default threshold, print them, call the empty placeholder
category absent (not rare), and say what rare means in their ``--help`` and in the README."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset

ROOT = Path(__file__).parents[2]
TRAIN = ROOT / "examples" / "medical_waste" / "train"
SRC = ["--ann", str(TRAIN / "_annotations.coco.json"), "--images", str(TRAIN)]
RULE = "held by fewer images than 0.8 x the images holding the most common class"
runner = CliRunner()


def _expected() -> tuple[list[str], list[str]]:
    """Rare and absent classes counted by hand: images holding each category, against the most held one."""
    ds = Dataset.load(TRAIN / "_annotations.coco.json", TRAIN)
    held = {c["id"]: len({a["image_id"] for a in ds.annotations if a["category_id"] == c["id"]})
            for c in ds.categories}
    names = {c["id"]: c["name"] for c in ds.categories}
    top = max(held.values())
    return [names[c] for c, n in held.items() if 0 < n < 0.8 * top], [names[c] for c, n in held.items() if not n]


def _line(output: str) -> str:
    return next(ln for ln in output.splitlines() if ln.startswith("rare classes"))


def test_eda_and_augment_pick_and_print_the_same_rare_classes(tmp_path: Path) -> None:
    rare, absent = _expected()
    assert rare == ["Blood bag", "Mask"] and absent == ["medical-waste"]
    expected = f"rare classes ({RULE}): {', '.join(rare)}; absent (no image holds them): {', '.join(absent)}"
    eda = runner.invoke(app, ["eda", *SRC, "--no-images", "--out", str(tmp_path / "eda"), "--no-progress"])
    assert eda.exit_code == 0, eda.output
    assert _line(eda.output) == expected
    summary = json.loads((tmp_path / "eda" / "summary.json").read_text())["rare"]
    assert summary == {"threshold": 0.8, "rule": RULE, "classes": rare, "absent": absent}
    for op, args in (("copy-paste", ["--rare", "auto"]), ("mosaic", ["--prefer", "auto"]),
                     ("ricap", ["--prefer", "auto"])):
        result = runner.invoke(app, ["augment", op, *SRC, *args, "-n", "2", "--out", str(tmp_path / op),
                                     "--no-progress", "--workers", "1"])
        assert result.exit_code == 0, result.output
        assert _line(result.output) == expected.replace("no image holds", "no source image holds"), op


def test_one_threshold_changes_every_pick(tmp_path: Path) -> None:
    eda = runner.invoke(app, ["eda", *SRC, "--no-images", "--out", str(tmp_path / "eda"), "--no-progress",
                              "--rare-threshold", "0.5"])
    assert "rare classes (held by fewer images than 0.5 x" in eda.output and ": Blood bag;" in eda.output
    cp = runner.invoke(app, ["augment", "copy-paste", *SRC, "--rare", "auto", "--rare-threshold", "0.3", "-n", "1",
                             "--out", str(tmp_path / "cp"), "--no-progress"])
    assert cp.exit_code == 2 and "no rare class to paste" in cp.stderr and "--classes" in cp.stderr


@pytest.mark.parametrize("command", [["eda"], ["augment", "copy-paste"], ["augment", "mosaic"], ["augment", "ricap"]])
def test_help_and_readme_define_rare(command: list[str]) -> None:
    result = runner.invoke(app, [*command, "--help"], env={"COLUMNS": "240"})
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", result.output).split())
    assert "A class is rare when fewer images hold it than this fraction of the images holding the most common " \
           "class; a class no image holds is absent, not rare." in text
    assert "0.8" in text
    readme = " ".join((ROOT / "README.md").read_text().split())
    assert "fewer images hold it than `--rare-threshold` (default 0.8) times" in readme

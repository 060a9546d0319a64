"""Options: every command's help shows its defaults, every value is checked before any work, one option set.

Issue 11 items 6 (help), 7 (values checked first), 8 (eda --no-images) and 13 (shared options).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from enum import Enum
from pathlib import Path
from typing import Any

import pytest
from rich.text import Text
from typer.main import get_command
from typer.testing import CliRunner

from datatools.cli.main import app

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"
ANN = EXAMPLE / "_annotations.coco.json"
WIDE = 250  # columns: every option's help fits on one line of the table
runner = CliRunner()


def _commands(command: Any = None, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    """Every command and group of the app, with its path (``("folds", "check")``), walked from the root."""
    command = command or get_command(app)
    yield path, command
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = dict(_commands())
LEAVES = {path: cmd for path, cmd in COMMANDS.items() if path and not getattr(cmd, "commands", None)}


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p in LEAVES}
    assert {"validate", "eda", "folds check", "convert masks", "augment copy-paste", "train fit", "train evaluate",
            "train predict", "train soup"} <= names
    assert "folds" in {" ".join(p) for p in COMMANDS}  # a group that is a command too


def _help(path: tuple[str, ...], width: int) -> str:
    result = runner.invoke(app, [*path, "--help"], terminal_width=width, env={"COLUMNS": str(width)})
    assert result.exit_code == 0, result.output
    return result.output


def _options(command: Any) -> list[Any]:
    return [p for p in command.params if getattr(p, "help", None)]


@pytest.mark.parametrize("path", list(COMMANDS), ids=lambda p: " ".join(p) or "datatools")
def test_help_shows_every_help_text_and_default(path: tuple[str, ...]) -> None:
    """Item 6: no help text loses words to Rich markup ("Processes for per-image work ."), no empty default."""
    text = _help(path, WIDE)
    assert "[default: ]" not in text and "[default: ()]" not in text
    for param in _options(COMMANDS[path]):
        assert Text.from_markup(param.help).plain == param.help, f"{param.name}: markup in the help swallows text"
        line = next((ln for ln in text.splitlines() if param.help in ln), None)
        assert line is not None, f"{param.name}: help {param.help!r} not shown whole"
        shown = line[line.index(param.help):].rstrip(" │")
        assert "  " not in shown and not re.search(r" [.,;:](\s|$)", shown), f"{param.name}: {shown!r}"
        computed = isinstance(param.show_default, str)
        if computed or (param.show_default and param.default is not None and not param.required
                        and not getattr(param, "is_flag", False)):
            assert "[default: " in shown, f"{param.name}: default not shown: {shown!r}"
        if computed:
            assert param.show_default in shown


WITH_EXAMPLES = [p for p, cmd in COMMANDS.items() if "Example" in (cmd.help or "")]


def examples_in_help(text: str) -> list[list[str]]:
    """The example commands of a rendered help, each as its lines (a line ending in a backslash continues)."""
    description = text.split("╭")[0]
    lines = [ln.strip() for ln in description.splitlines()]
    examples: list[list[str]] = []
    for ln in lines[lines.index("Example:") + 1:]:
        if examples and examples[-1][-1].endswith("\\"):
            examples[-1].append(ln)
        elif ln:
            examples.append([ln])
    return examples


@pytest.mark.parametrize("path", WITH_EXAMPLES, ids=lambda p: " ".join(p))
def test_help_examples_are_not_wrapped_at_80_columns(path: tuple[str, ...]) -> None:
    """Item 12: an 80-column terminal never wraps a help example mid-command."""
    examples = examples_in_help(_help(path, 80))
    assert examples, "no example"
    for example in examples:
        assert example[0].startswith("datatools "), f"an example line was wrapped: {example}"
    wide = examples_in_help(_help(path, WIDE))
    assert examples == wide


def test_every_command_has_an_example() -> None:
    assert set(LEAVES) <= set(WITH_EXAMPLES)


# ---- item 7: every enum-like value is refused before any work, in one line ----------------------------------

SRC = ["--ann", str(ANN), "--images", str(EXAMPLE)]

# (command, option, a bad value); every option with a fixed set of values or a parser is listed
# (test_every_checked_option_is_in_the_table keeps it complete).
#: the commands that run their per-image work on --engine local|dask
ENGINE_COMMANDS = [("validate",), ("convert", "masks"), ("convert", "coco"), ("eda",), ("folds",), ("folds", "check"),
                   ("clean",), *[("augment", op) for op in ("mosaic", "ricap", "copy-paste", "flip", "rotate", "albu")],
                   ("train", "predict"), ("pseudo-label",)]

BAD_VALUES: list[tuple[tuple[str, ...], str, str]] = [
    (("convert", "masks"), "--overlap", "bogus"),
    (("convert", "masks"), "--crowd", "drop"),
    (("convert", "submission"), "--style", "bogus"),
    (("convert", "from-submission"), "--style", "bogus"),
    (("convert", "from-submission"), "--shape", "12"),
    (("eda",), "--overlap", "class-priority"),
    (("eda",), "--train-size", "100"),
    (("folds",), "--stratify", "bogus"),
    (("folds",), "--group-by", "bogus:x"),
    (("folds", "check"), "--group-by", "bogus:x"),
    (("augment", "mosaic"), "--grid", "5"),
    (("augment", "mosaic"), "--size", "abc"),
    (("augment", "mosaic"), "--center-range", "x"),
    (("augment", "ricap"), "--size", "0"),
    (("augment", "copy-paste"), "--blend", "soft"),
    (("augment", "copy-paste"), "--rare", "some"),
    (("augment", "copy-paste"), "--objects-range", "a"),
    (("augment", "flip"), "--directions", "d"),
    (("augment", "rotate"), "--angles", "x"),
    (("edit", "classes"), "--drop", "id:x"),
    (("edit", "classes"), "--merge", "nothing-to-merge"),
    (("edit", "classes"), "--rename", "no-equals"),
    (("edit", "classes"), "--reorder", "a,id:y"),
    (("edit", "split"), "--ratios", "0.33,0.67"),
    (("edit", "split"), "--names", "a,a"),
    (("edit", "split"), "--stratify", "bogus"),
    (("edit", "split"), "--group-by", "bogus:x"),
    (("edit", "subset"), "--ids", "1,x"),
    (("edit", "subset"), "--regex", "("),
    (("edit", "subset"), "--has-class", "id:z"),
    (("train", "fit"), "--optimizer", "adam"),
    (("train", "fit"), "--scheduler", "step"),
    (("train", "fit"), "--loss", "bce"),
    (("train", "fit"), "--mode", "binary"),
    (("train", "fit"), "--overlap", "bogus"),
    (("train", "fit"), "--size", "64,32"),
    (("train", "fit"), "--weights", "nope/encoder.pth"),
    (("train", "fit"), "--device", "tpu"),
    (("train", "fit"), "--normalize", "bogus"),
    (("train", "fit"), "--normalize", "0.5,0"),
    (("train", "fit"), "--stats", "missing-summary.json"),
    (("train", "fit"), "--sampler", "random"),
    (("train", "fit"), "--repeat-threshold", "2"),
    (("train", "fit"), "--class-weights", "bogus"),
    (("train", "fit"), "--early-stop", "0"),
    (("train", "fit"), "--log", "wandb"),
    (("train", "fit"), "--crop", "100"),
    (("train", "fit"), "--crop-rare", "1.5"),
    (("train", "export"), "--format", "tflite"),
    (("train", "export"), "--size", "64,32"),
    (("train", "evaluate"), "--tta", "bogus"),
    (("train", "evaluate"), "--thresholds", "x"),
    (("train", "evaluate"), "--device", "tpu"),
    (("train", "evaluate"), "--sliding-window", "64,65"),
    (("train", "evaluate"), "--blend", "box"),
    (("train", "predict"), "--tta", "rot45"),
    (("train", "predict"), "--submission", "csv"),
    (("train", "predict"), "--probs-dtype", "int8"),
    (("train", "predict"), "--thresholds", "1.5"),
    (("train", "predict"), "--device", "cuda:x"),
    (("train", "predict"), "--sliding-window", "70"),
    (("train", "predict"), "--sliding-window", "64,0"),
    (("train", "predict"), "--blend", "box"),
    (("train", "soup"), "--device", "tpu"),
    (("pseudo-label",), "--sliding-window", "96,x"),
    (("pseudo-label",), "--blend", "box"),
    *[((("augment", op)), option, value) for op in ("mosaic", "ricap", "copy-paste", "flip", "rotate", "albu")
      for option, value in (("--format", "gif"), ("--segmentation", "mask"))],
    *[(("augment", op), "--lateral-pairs", "left_x") for op in ("copy-paste", "flip", "rotate", "albu")],
    *[(command, option, value) for command in ENGINE_COMMANDS
      for option, value in (("--engine", "spark"), ("--scheduler", "localhost:8786"))],
    *[(command, "--mask-format", "jpeg") for command in (("convert", "masks"), ("convert", "from-submission"),
                                                         ("train", "predict"))],
]


def _args(command: tuple[str, ...], tmp_path: Path) -> tuple[list[str], Path]:
    """A command line that is valid but for the option under test, and where it would write."""
    out = tmp_path / "out"
    ckpt = tmp_path / "model.pt"
    ckpt.write_bytes(b"not read: the options are checked first")
    extra: dict[tuple[str, ...], list[str]] = {
        ("convert", "submission"): ["--masks", str(EXAMPLE)],
        ("convert", "from-submission"): ["--csv", str(ANN), "--classes", str(ANN), "--style", "rle"],
        ("folds", "check"): ["--folds", str(ANN)],
        ("train", "evaluate"): ["--ckpt", str(ckpt), *SRC],
        ("train", "predict"): ["--ckpt", str(ckpt), *SRC],
        ("pseudo-label",): ["--ckpt", str(ckpt), *SRC],
        ("train", "soup"): ["--ckpt", str(ckpt), "--ckpt", str(ckpt), *SRC],
        ("train", "compare"): [str(tmp_path), str(tmp_path)],
        ("train", "export"): ["--ckpt", str(ckpt)],
        ("augment", "albu"): [*SRC, "--pipeline", str(ckpt)],
    }
    args = [*command, *extra.get(command, SRC)]
    if command not in (("folds", "check"), ("validate",)):
        args += ["--out", str(out)]
    return args, out


@pytest.mark.parametrize(("command", "option", "value"), BAD_VALUES,
                         ids=[f"{' '.join(c)} {o}={v}" for c, o, v in BAD_VALUES])
def test_bad_value_is_refused_in_one_line_before_any_work(tmp_path: Path, command: tuple[str, ...], option: str,
                                                          value: str) -> None:
    args, out = _args(command, tmp_path)
    quiet = ["--no-progress"] if "--no-progress" in _opts(COMMANDS[command]) else []
    result = runner.invoke(app, [*args, option, value, *quiet])
    assert result.exit_code == 2, result.output
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and option in lines[0], result.stderr
    assert repr(value) in lines[0] or value in lines[0]
    assert result.stdout == ""
    assert not out.exists()


def _is_choice(param: Any) -> bool:
    annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)  # Typer >= 0.2x
    if isinstance(annotation, type) and issubclass(annotation, Enum):
        return True
    return hasattr(getattr(param, "type", None), "choices")  # click's Choice


def _checked_options(command: Any) -> set[str]:
    """Options whose values come from a fixed set (a choice) or go through a parser (a callback)."""
    found = set()
    for param in command.params:
        if not param.opts or getattr(param, "is_flag", False) or getattr(param, "is_eager", False):
            continue
        if _is_choice(param) or param.callback is not None:
            found.add(next(o for o in param.opts if o.startswith("--")))
    return found


def test_every_checked_option_is_in_the_table() -> None:
    """The sweep: every option with a choice or a parser, in every command, has a bad-value case above."""
    listed: dict[tuple[str, ...], set[str]] = {}
    for command, option, _ in BAD_VALUES:
        listed.setdefault(command, set()).add(option)
    missing = {" ".join(path): sorted(_checked_options(cmd) - listed.get(path, set()))
               for path, cmd in COMMANDS.items() if path}
    assert {k: v for k, v in missing.items() if v} == {}


def test_crowd_drop_is_one_line_not_a_worker_traceback(tmp_path: Path) -> None:
    """The issue's case: `convert masks --crowd drop` gave 76 lines from the process pool."""
    out = tmp_path / "m"
    result = runner.invoke(app, ["convert", "masks", *SRC, "--out", str(out), "--crowd", "drop", "--workers", "2",
                                 "--no-progress"])
    assert result.exit_code == 2
    assert result.stderr == "error: --crowd: 'drop' is not one of 'class', 'ignore'.\n"
    assert not out.exists()


def test_unknown_option_and_missing_option_are_one_line(tmp_path: Path) -> None:
    result = runner.invoke(app, ["eda", *SRC, "--out", str(tmp_path / "e"), "--bogus"])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and "--bogus" in result.stderr
    result = runner.invoke(app, ["eda", *SRC])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1 and "--out" in result.stderr


# ---- item 8: eda --no-images -----------------------------------------------------------------------------------

def test_eda_no_images_needs_no_images_folder(make_coco, tmp_path: Path) -> None:
    ann, _, _ = make_coco()
    out = tmp_path / "eda"
    result = runner.invoke(app, ["eda", "--ann", str(ann), "--no-images", "--out", str(out), "--no-progress",
                                 "--gallery", "0"])
    assert result.exit_code == 0, result.output
    assert (out / "report.html").is_file()
    assert "normalize:" not in result.stdout  # no pixel statistics without images


@pytest.mark.parametrize("no_images", [True, False], ids=["no-images", "images"])
@pytest.mark.parametrize("bogus", ["missing", "file"])
def test_eda_checks_a_given_images_folder(tmp_path: Path, no_images: bool, bogus: str) -> None:
    images = tmp_path / "nope" if bogus == "missing" else ANN
    out = tmp_path / "eda"
    result = runner.invoke(app, ["eda", "--ann", str(ANN), "--images", str(images), "--out", str(out),
                                 "--no-progress", *(["--no-images"] if no_images else [])])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith(f"error: {images}: ") and len(result.stderr.splitlines()) == 1
    assert not out.exists()


def test_eda_without_no_images_requires_images(tmp_path: Path) -> None:
    out = tmp_path / "eda"
    result = runner.invoke(app, ["eda", "--ann", str(ANN), "--out", str(out), "--no-progress"])
    assert result.exit_code == 2 and "--images" in result.stderr and len(result.stderr.splitlines()) == 1
    assert not out.exists()


# ---- item 13: one option set, one style ------------------------------------------------------------------------

READERS = [p for p in LEAVES if p not in {("convert", "from-masks"), ("convert", "polygon-json"),
                                          ("convert", "submission"), ("convert", "from-submission"),
                                          ("train", "compare"), ("train", "export")}]  # eval folders; a checkpoint


def _opts(command: Any) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize("path", READERS, ids=lambda p: " ".join(p))
def test_every_dataset_reader_takes_the_shared_options(path: tuple[str, ...]) -> None:
    opts = _opts(LEAVES[path])
    assert {"--progress", "--no-progress"} <= opts
    # validate reports records, check audits them all, clean reports broken records as findings (--apply drops them)
    if path not in {("validate",), ("folds", "check"), ("clean",)}:
        assert "--skip-invalid" in opts
    if "--workers" in opts and path[0] != "train":
        assert "[default: (all cores)]" in _help(path, WIDE)


@pytest.mark.parametrize("value", ["bogus", "class-priority"])
def test_a_bad_overlap_reads_the_same_everywhere(tmp_path: Path, value: str) -> None:
    lines = set()
    for command in (("eda",), ("convert", "masks"), ("train", "fit")):
        result = runner.invoke(app, [*command, *SRC, "--out", str(tmp_path / "o"), "--overlap", value])
        assert result.exit_code == 2
        lines.add(result.stderr)
    assert len(lines) == 1 and next(iter(lines)).startswith("error: --overlap: ")


def test_size_is_one_type_read_by_one_parser(tmp_path: Path) -> None:
    lines = set()
    for command in (("augment", "mosaic"), ("augment", "ricap"), ("train", "fit")):
        result = runner.invoke(app, [*command, *SRC, "--out", str(tmp_path / "o"), "--size", "12x"])
        assert result.exit_code == 2
        lines.add(result.stderr)
    assert lines == {"error: --size: must be N or H,W, got '12x'\n"}
    result = runner.invoke(app, ["train", "fit", *SRC, "--out", str(tmp_path / "o"), "--size", "64,32"])
    assert result.exit_code == 2 and "squares" in result.stderr


def test_submission_styles_have_one_vocabulary(tmp_path: Path) -> None:
    """convert submission --style and train predict --submission take class-ids|rle; trash|xray still work."""
    masks = tmp_path / "masks"
    result = runner.invoke(app, ["convert", "masks", *SRC, "--out", str(masks), "--no-copy-images",
                                 "--no-progress"])
    assert result.exit_code == 0, result.output
    csvs = {}
    for style in ("class-ids", "trash", "rle", "xray"):
        out = tmp_path / f"{style}.csv"
        result = runner.invoke(app, ["convert", "submission", "--masks", str(masks), "--style", style, "--size",
                                     "32", "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert ("is now called" in result.stderr) == (style in ("trash", "xray")), result.stderr
        csvs[style] = out.read_bytes()
    assert csvs["class-ids"] == csvs["trash"] and csvs["rle"] == csvs["xray"] and csvs["rle"] != csvs["trash"]
    predict = LEAVES[("train", "predict")]
    convert = LEAVES[("convert", "submission")]
    metavar = {p.name: p.metavar for p in (*predict.params, *convert.params)}
    assert metavar["submission"] == metavar["style"] == "class-ids|rle"


def test_validate_and_convert_coco_take_no_progress(tmp_path: Path) -> None:
    for args in (["validate", *SRC, "--no-progress", "--no-decode"],
                 ["convert", "coco", *SRC, "--out", str(tmp_path / "c"), "--no-progress"]):
        result = runner.invoke(app, args)
        assert result.exit_code in (0, 1), result.output
        assert "Traceback" not in result.output and not re.search(r"\d+/\d+", result.stderr)


def test_clean_help_lists_every_finding_kind() -> None:
    from datatools.clean.findings import KINDS

    text = " ".join(_help(("clean",), WIDE).split())
    assert all(kind in text for kind in KINDS)

"""Small report faults (issue 11 item 15): eda's Folds heat maps keep their titles inside the figure, folds and
eda give the same largest pixel deviation for the same folds (and say on what base), and a command piped into a
reader that stops early (``| head -1``) ends quietly with its own exit code."""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app

ROOT = Path(__file__).parents[2]
TRAIN = ROOT / "examples" / "medical_waste" / "train"
ANN = TRAIN / "_annotations.coco.json"
runner = CliRunner()


@pytest.fixture(scope="module")
def folds_and_eda(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, Path]:
    """``datatools folds`` with the images (pixel shares from the rasterised masks) and ``eda --folds`` on it."""
    root = tmp_path_factory.mktemp("report")
    made = runner.invoke(app, ["folds", "--ann", str(ANN), "--images", str(TRAIN), "--k", "3", "--out",
                               str(root / "folds"), "--no-progress", "--workers", "1"])
    assert made.exit_code == 0, made.output
    eda = runner.invoke(app, ["eda", "--ann", str(ANN), "--images", str(TRAIN), "--folds",
                              str(root / "folds" / "folds.parquet"), "--out", str(root / "eda"), "--no-progress",
                              "--workers", "1", "--gallery", "0"])
    assert eda.exit_code == 0, eda.output
    return made.stdout, root / "folds", root / "eda"


def test_folds_and_eda_agree_on_the_largest_pixel_deviation(folds_and_eda: tuple[str, Path, Path]) -> None:
    printed, _, eda = folds_and_eda
    line = next(ln for ln in printed.splitlines() if ln.startswith("largest class-share deviation"))
    assert "labelled pixels" in line and "rasterised masks" in line, "the base is named"
    folds_pixels = float(re.search(r"pixels (\d+\.\d+)", line).group(1))  # type: ignore[union-attr]
    summary = json.loads((eda / "summary.json").read_text())["folds"]
    eda_pixels = 100 * abs(summary["labelled_share"]["largest"]["deviation"])
    assert eda_pixels == pytest.approx(folds_pixels, abs=0.006)
    html = (eda / "report.html").read_text()
    section = html[html.index('<section id="folds">'):]
    lead = re.sub(r"<[^>]+>", "", section[:section.index("</p>")])
    assert "share of labelled pixels" in lead and f"{eda_pixels:.2f} points" in lead


def _folds_figures(eda: Path) -> list[np.ndarray]:
    html = (eda / "report.html").read_text()
    section = html[html.index('<section id="folds">'):]
    section = section[:section.index("</section>")]
    pngs = re.findall(r'src="data:image/png;base64,([^"]+)"', section)
    return [cv2.imdecode(np.frombuffer(base64.b64decode(p), np.uint8), cv2.IMREAD_GRAYSCALE) for p in pngs]


def test_the_folds_heat_map_titles_are_not_clipped(folds_and_eda: tuple[str, Path, Path]) -> None:
    figures = _folds_figures(folds_and_eda[2])
    assert len(figures) == 2
    for gray in figures:
        dark = gray < 128
        assert not dark[:, :2].any() and not dark[:, -2:].any(), "text runs off the left or right edge"
        assert not dark[:2, :].any(), "text runs off the top edge"


def _closed_reader(*args: str) -> subprocess.CompletedProcess[bytes]:
    """Run the command with a stdout whose reader has already gone (what ``| head -1`` leaves)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "datatools", *args], stdout=write, stderr=subprocess.PIPE,
                              cwd=ROOT, timeout=300, check=False)
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [["--version"], ["validate", "--ann", str(ANN), "--images", str(TRAIN)]])
def test_a_closed_stdout_is_quiet(args: list[str]) -> None:
    result = _closed_reader(*args)
    assert result.returncode == 0, result.stderr.decode()
    assert b"Traceback" not in result.stderr and b"BrokenPipe" not in result.stderr


def test_a_closed_stdout_keeps_the_commands_own_exit_code(folds_and_eda: tuple[str, Path, Path]) -> None:
    """folds check finds leaks (exact copies across folds): exit 1 is its verdict, with or without a reader."""
    folds = folds_and_eda[1] / "folds.parquet"
    result = _closed_reader("folds", "check", "--folds", str(folds), "--images", str(TRAIN), "--no-progress",
                            "--workers", "1")
    assert result.returncode == 1 and b"Traceback" not in result.stderr
    clean = _closed_reader("folds", "check", "--folds", str(folds), "--no-progress")
    assert clean.returncode == 0, clean.stderr.decode()

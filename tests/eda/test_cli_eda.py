"""``datatools eda`` from the command line: help, a fast start, a real run, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from typer.testing import CliRunner

from datatools.cli.main import app

VALID = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"
ANN = VALID / "_annotations.coco.json"
runner = CliRunner()


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "datatools", *args], capture_output=True, text=True, timeout=300)


def test_help_has_an_example() -> None:
    result = runner.invoke(app, ["eda", "--help"], terminal_width=200)
    assert result.exit_code == 0
    assert "Example" in result.output and "datatools eda --ann" in result.output
    for option in ("--folds", "--meta", "--meta-key", "--overlap", "--no-images", "--workers"):
        assert option in result.output


def test_the_command_line_does_not_import_the_eda_package() -> None:
    code = ("import sys; from datatools.cli.main import app\n"
            "heavy = [m for m in ('datatools.eda', 'matplotlib') if m in sys.modules]\n"
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_eda_runs_and_prints_the_headline(tmp_path: Path) -> None:
    r = run("eda", "--ann", str(ANN), "--images", str(VALID), "--out", str(tmp_path / "e"), "--workers", "2",
            "--no-progress", "--overlap", "max-id", "--gallery", "2")
    assert r.returncode == 0, r.stderr
    assert "report.html" in r.stdout and "normalize: mean=(" in r.stdout
    summary = json.loads((tmp_path / "e" / "summary.json").read_text())
    assert summary["overlap_policy"] == "max-id"
    assert {p.name for p in (tmp_path / "e").iterdir()} == {"report.html", "summary.json", "images.parquet",
                                                           "annotations.parquet", "classes.parquet"}


def test_bad_input_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"images": [}')
    r = run("eda", "--ann", str(bad), "--images", str(VALID), "--out", str(tmp_path / "e"))
    assert r.returncode == 2 and str(bad) in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "e").exists()
    r = run("eda", "--ann", str(ANN), "--images", str(VALID), "--out", str(tmp_path / "e"), "--overlap", "biggest")
    assert r.returncode == 2 and "unknown overlap policy" in r.stderr
    r = run("eda", "--ann", str(ANN), "--images", str(VALID), "--out", str(tmp_path / "e"), "--meta", str(ANN))
    assert r.returncode == 2 and "--meta-key" in r.stderr
    assert not (tmp_path / "e").exists()

"""report.html renders in headless Chromium: not a blank page, no console message, laid out at 1366x900.

Needs the Debian package ``chromium`` (``apt-get install -y chromium``); skipped when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from datatools.eda import run_eda

CHROMIUM = Path("/usr/bin/chromium")
VALID = Path(__file__).parents[2] / "examples" / "medical_waste" / "valid"
HEADER_BGR = (0x30, 0x24, 0x1D)  # the report's header colour, #1d2430
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--enable-logging=stderr", "--v=0"]
# the report has no script at all, so any console line (an uncaught error, a resource that failed to load) is wrong
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\]\s*(.*)")

pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs headless Chromium: apt-get install -y chromium")


def screenshot(html: Path, tmp: Path, size: str = "1366,900") -> tuple[np.ndarray, list[str]]:
    """Render ``html`` in headless Chromium; the screenshot (BGR) and every console message."""
    png = tmp / f"{html.stem}.png"
    result = subprocess.run([str(CHROMIUM), *FLAGS, f"--user-data-dir={tmp / 'profile'}", f"--screenshot={png}",
                             f"--window-size={size}", html.resolve().as_uri()],
                            capture_output=True, text=True, timeout=180)
    assert png.is_file(), f"no screenshot (exit {result.returncode}): {result.stderr[-2000:]}"
    image = cv2.imread(str(png))
    assert image is not None
    return image, [m.group(1) for m in CONSOLE.finditer(result.stderr)]


def check_not_blank(image: np.ndarray) -> None:
    colours = len(np.unique(image.reshape(-1, 3), axis=0))
    assert colours > 500 and float(image.std()) > 20, f"blank-looking page: {colours} colours, std {image.std():.1f}"


def test_report_renders_without_console_errors(tmp_path: Path) -> None:
    run_eda(VALID / "_annotations.coco.json", VALID, out=tmp_path / "eda", workers=2, progress=False)
    report = tmp_path / "eda" / "report.html"
    image, console = screenshot(report, tmp_path)
    assert console == [], f"console messages: {console}"
    assert image.shape[:2] == (900, 1366)
    check_not_blank(image)
    top = image[:40].reshape(-1, 3)
    assert (np.abs(top.astype(int) - HEADER_BGR).sum(axis=1) < 12).mean() > 0.5, "the report header is not shown"
    # the first screen holds the overview and a figure, not an empty white page below the header
    body = image[120:]
    assert (np.abs(body.astype(int) - 255).sum(axis=2) > 60).mean() > 0.05


def test_the_checks_catch_a_broken_page(tmp_path: Path) -> None:
    broken = tmp_path / "broken.html"
    broken.write_text("<!doctype html><html><body><p>x</p><script>console.error('boom'); missingFn();</script>"
                      "</body></html>")
    image, console = screenshot(broken, tmp_path)
    assert any("boom" in m for m in console) and any("missingFn" in m for m in console)
    with pytest.raises(AssertionError, match="blank-looking page"):
        check_not_blank(image)

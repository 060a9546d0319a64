"""``report.html`` of ``datatools pseudo-label``: it renders offline with odd class names, its numbers are those of
``summary.json`` (which are checked against numpy here), and its gallery shows the ignore region."""

from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from pseudo_fixtures import smooth_probs, write_images, write_probs
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.dataset import Dataset
from datatools.core.masks import mask_to_rle
from datatools.eda._html import num, pct

runner = CliRunner()
HW = (48, 64)
# odd names: markup, a name two classes share (shown with their ids), the placeholder id 0, unicode
CATS = [{"id": 0, "name": "<b>waste&\"co\"</b>"}, {"id": 4, "name": "dup"}, {"id": 9, "name": "dup"},
        {"id": 2, "name": "ünï ✓"}]
LABELS = ["background", "<b>waste&\"co\"</b>", "dup (id 4)", "dup (id 9)", "ünï ✓"]
N = 5
THRESHOLD = 0.8


def _cli(*args: str) -> Any:
    result = runner.invoke(app, ["pseudo-label", "--no-progress", "--workers", "1", *args])
    assert result.exit_code == 0, f"{result.output}\n{result.exception!r}"
    return result


def _labelled(folder: Path) -> list[np.ndarray]:
    """A labelled dataset whose annotations are known numpy masks (class values 1..4); returns them."""
    write_images(folder, 3, HW, CATS, seed=3)
    coco = json.loads((folder / "annotations.json").read_text())
    masks, anns = [], []
    for k, img in enumerate(coco["images"]):
        mask = np.zeros(HW, np.uint8)
        for value, cat in enumerate(CATS, start=1):
            plane = np.zeros(HW, bool)
            plane[10 * value - 6 + k: 10 * value - 3 + k + value, 5 * value: 9 * value + 2 * k] = True  # disjoint
            mask[plane] = value
            anns.append({"id": len(anns) + 1, "image_id": img["id"], "category_id": cat["id"], "iscrowd": 0,
                         "segmentation": mask_to_rle(plane), "area": int(plane.sum()),
                         "bbox": [float(v) for v in cv2.boundingRect(plane.astype(np.uint8))]})
        masks.append(mask)
    coco["annotations"] = anns
    (folder / "annotations.json").write_text(json.dumps(coco))
    return masks


def _probs() -> list[np.ndarray]:
    """Blobby probabilities; image 0: its left half undecided (ignored), its right half confident background."""
    rng = np.random.default_rng(11)
    probs = [smooth_probs(rng, len(CATS) + 1, HW, multilabel=False) for _ in range(N)]
    probs[0][:] = np.float16(0.01)
    probs[0][0, :, HW[1] // 2:] = np.float16(0.96)
    probs[0][:, :, : HW[1] // 2] = np.float16(1 / (len(CATS) + 1))
    return probs


def _row(page: str, label: str) -> list[str]:
    """The cells of the classes table row of ``label``."""
    for row in re.findall(r"<tr>(.*?)</tr>", page, flags=re.S):
        cells = re.findall(r"<td>(.*?)</td>", row, flags=re.S)
        if cells and cells[0].endswith(f"</span>{html.escape(label, quote=True)}"):
            return cells
    raise AssertionError(f"no row for {label!r}")


def test_report_shows_the_summary_with_odd_names_and_the_ignore_region(tmp_path: Path) -> None:
    data = write_images(tmp_path / "data", N, HW, CATS)
    labelled = _labelled(tmp_path / "labelled")
    ds = Dataset.from_dir(data)
    probs = _probs()
    write_probs(tmp_path / "pred", {img["file_name"]: p for img, p in zip(ds.images, probs, strict=True)}, CATS,
                "multiclass")
    shares = []
    for p in probs:
        p32 = p.astype(np.float32)
        shares.append(float((p32.max(axis=0) >= np.float32(THRESHOLD)).mean()))
    min_confident = sorted(shares)[1] - 1e-9  # skips exactly the least confident image
    skipped = ds.images[int(np.argmin(shares))]["file_name"]
    args = ["--probs", str(tmp_path / "pred"), "--data", str(data), "--merge-with", str(tmp_path / "labelled"),
            "--threshold", str(THRESHOLD), "--min-confident", str(min_confident)]
    _cli(*args, "--out", str(tmp_path / "out"))
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>") and "http" not in page.replace("http-equiv", "")  # offline

    # summary.json against numpy: the labelled set's shares, the histogram of confident shares, the skip
    total = sum(m.size for m in labelled)
    for value, label in enumerate(LABELS):
        want = sum(int((m == value).sum()) for m in labelled) / total
        assert summary["classes"][label]["labelled_set_share"] == round(want, 6)
    assert list(summary["classes"]) == LABELS
    assert summary["confident_share"]["histogram"]["counts"] == np.histogram(shares, bins=np.linspace(0, 1, 11))[
        0].tolist()
    assert summary["skipped"] == [skipped] and summary["written"] == N - 1

    # the report's numbers are summary.json's
    for label, c in summary["classes"].items():
        cells = _row(page, label)
        assert cells[1] == num(c["predicted_pixels"]) and cells[3] == num(c["labelled_pixels"])
        assert f"<em>{pct(c['confident_share'])}</em>" in cells[2] if c["confident_share"] is not None \
            else cells[2] == "–"
        assert cells[4] == pct(c["pixel_share"], 3) and cells[5] == pct(c["labelled_set_share"], 3)
    assert "<b>waste" not in page  # escaped everywhere
    for lo, n in zip(range(10), summary["confident_share"]["histogram"]["counts"], strict=True):
        assert re.search(rf"<td>{lo * 10}% – {lo * 10 + 10}%</td><td>{n}</td>", page)
    assert f"<li>{html.escape(skipped)}</li>" in page

    # the gallery: every written image (fewer than 8), least confident first; image 0's ignored half is whitened
    thumbs = re.findall(r'<img src="data:image/jpeg;base64,([^"]+)" alt="([^"]*)"', page)
    written = sorted((s, i) for i, s in enumerate(shares) if ds.images[i]["file_name"] != skipped)
    assert [html.unescape(alt) for _, alt in thumbs] == [f"pseudo/{ds.images[i]['file_name']}" for _, i in written]
    first = [b for b, alt in thumbs if html.unescape(alt).endswith(ds.images[0]["file_name"])][0]
    shown = cv2.imdecode(np.frombuffer(base64.b64decode(first), np.uint8), cv2.IMREAD_COLOR).astype(float)
    source = cv2.imread(str(data / "images" / ds.images[0]["file_name"])).astype(float)
    half = HW[1] // 2
    left = slice(3, half - 3)
    right = slice(half + 3, HW[1] - 3)
    assert shown[:, left].mean() > source[:, left].mean() + 40  # 45% white over the ignore region
    assert abs(shown[:, right].mean() - source[:, right].mean()) < 12  # background untouched

    # the same inputs give the same bytes
    _cli(*args, "--out", str(tmp_path / "again"))
    assert (tmp_path / "again" / "report.html").read_bytes() == (tmp_path / "out" / "report.html").read_bytes()

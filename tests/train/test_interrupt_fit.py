"""Ctrl-C in ``train fit`` leaves a resumable run (and says how to resume it) or nothing (issue 11 item 2)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")

from interrupts import Command  # noqa: E402

pytestmark = pytest.mark.train


def _fit(train_dir: Path, val_dir: Path, out: Path, size: int, epochs: int, *more: str) -> list[str]:
    return ["train", "fit", "--data", str(train_dir), "--val-data", str(val_dir), "--encoder", "resnet18",
            "--weights", "none", "--size", str(size), "--batch", "4", "--epochs", str(epochs), "--no-progress",
            "--out", str(out), *more]


def test_ctrl_c_before_the_first_epoch_ends_leaves_nothing(tiny_multiclass: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    out = tmp_path / "runs" / "r"
    # 512 px: the first epoch takes long enough to be interrupted in it
    cmd = Command(_fit(*tiny_multiclass, out, 512, 50, "--workers", "0"))
    cmd.wait_for(lambda: any(line.startswith("training ") for line in cmd.stderr))
    assert cmd.interrupt() == 130, cmd.stderr
    after = cmd.stderr[[i for i, line in enumerate(cmd.stderr) if line.startswith("training ")][0] + 1:]
    assert after == [f"error: interrupted before the first epoch ended; removed the partial run folder {out}, "
                     "nothing was kept"], cmd.stderr
    assert list((tmp_path / "runs").iterdir()) == []  # a rerun finds no half-written folder


def test_ctrl_c_after_an_epoch_leaves_a_resumable_run(tiny_multiclass: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "r"
    cmd = Command(_fit(*tiny_multiclass, out, 64, 50, "--workers", "0"))
    cmd.wait_for(lambda: any(line.startswith("epoch 1/50 ") for line in cmd.stderr))
    assert cmd.interrupt() == 130, cmd.stderr
    last = cmd.stderr[-1]
    assert last.startswith("error: interrupted in epoch ") and f"--out {out} --resume" in last, cmd.stderr
    assert not any("Traceback" in line for line in cmd.stderr), cmd.stderr
    assert (out / "last.pt").is_file() and (out / "best.pt").is_file()
    done = len(pd.read_csv(out / "history.csv"))
    assert last.startswith(f"error: interrupted in epoch {done + 1}/50; {out} holds the run up to epoch {done} ")
    # the run continues where it stopped
    resumed = Command(_fit(*tiny_multiclass, out, 64, done + 1, "--workers", "0", "--resume"))
    assert resumed.proc.wait(600) == 0, resumed.stderr
    assert pd.read_csv(out / "history.csv")["epoch"].tolist() == list(range(1, done + 2))

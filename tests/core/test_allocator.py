"""The allocator settings keep freed memory for the next image: a command-line run of an op faults far fewer pages
in than the same run through the library in a process left at glibc's defaults."""

from __future__ import annotations

import platform
import resource
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste" / "train"


def _page_faults(cmd: list[str]) -> int:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt
    subprocess.run(cmd, check=True, capture_output=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_minflt - before


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt settings are glibc's")
def test_the_command_keeps_freed_memory(tmp_path: Path) -> None:
    ann = EXAMPLE / "_annotations.coco.json"
    command = _page_faults([sys.executable, "-m", "datatools", "augment", "flip", "--ann", str(ann), "--images",
                            str(EXAMPLE), "--out", str(tmp_path / "cli"), "--workers", "1", "--no-progress"])
    library = _page_faults([sys.executable, "-c", (
        "from datatools.augment import run_augment; from datatools.core.dataset import Dataset; "
        f"run_augment(Dataset.load({str(ann)!r}, {str(EXAMPLE)!r}), {str(tmp_path / 'lib')!r}, 'flip', workers=1, "
        "progress=False)")])
    assert command < library / 2, (command, library)
    assert sorted(p.name for p in (tmp_path / "cli").rglob("*.jpg")) == \
        sorted(p.name for p in (tmp_path / "lib").rglob("*.jpg"))


def test_settings_apply_on_glibc_only() -> None:
    from datatools.core.allocator import keep_freed_memory

    assert keep_freed_memory() == (platform.libc_ver()[0] == "glibc")

"""Check the permission bits of everything a command wrote (issue 11 item 5)."""

from __future__ import annotations

import stat
from pathlib import Path


def wrong_modes(root: Path, mask: int) -> list[str]:
    """Every path under ``root`` (``root`` included) whose permission bits differ from a plain open/mkdir's."""
    assert root.is_dir(), root
    wrong = []
    for path in [root, *root.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        expected = (0o777 if path.is_dir() else 0o666) & ~mask
        if mode != expected:
            wrong.append(f"{path.relative_to(root.parent)} {oct(mode)} != {oct(expected)}")
    return wrong

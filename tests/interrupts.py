"""Run a real command in its own process group and press Ctrl-C (SIGINT to the whole group, as a terminal does)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path


class Command:
    """``python -m datatools ARGS`` in a new session; stderr is collected line by line as it comes."""

    def __init__(self, args: list[str], cwd: Path | None = None) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "datatools", *args], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, start_new_session=True, cwd=cwd)
        self.stderr: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip("\n"))

    def wait_for(self, ready: Callable[[], bool], timeout: float = 300) -> None:
        """Poll ``ready`` until it holds; fail if the command ends first."""
        end = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, f"ended before it could be interrupted: {self.stderr}"
            assert time.monotonic() < end, f"timed out: {self.stderr}"
            time.sleep(0.05)

    def interrupt(self, timeout: float = 120) -> int:
        """Ctrl-C to the process group; the exit code."""
        os.killpg(self.proc.pid, signal.SIGINT)
        try:
            code = self.proc.wait(timeout)
        finally:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
        self._reader.join(10)
        return code

"""``--engine dask``: the same bytes as ``--engine local``, faults, and workers that do not see the inputs.

All traffic stays on 127.0.0.1: one local cluster of 2 worker processes (scheduler and workers bound to loopback,
no dashboard) is started once for the module and shared by every test.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
from functools import partial
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from typer.testing import CliRunner

from datatools.cli.main import app
from datatools.core.engine import use_engine
from datatools.core.errors import DatatoolsError
from datatools.core.parallel import parallel_map

distributed = pytest.importorskip("distributed")

import cloudpickle  # noqa: E402 - a dependency of distributed

from datatools.core.dask_engine import start_local_cluster  # noqa: E402 - needs distributed

# the workers get this module's functions and plugin by value, instead of importing it (and the whole CLI with it)
cloudpickle.register_pickle_by_value(sys.modules[__name__])

runner = CliRunner()
EXAMPLE = Path(__file__).parents[2] / "examples" / "medical_waste"
VALID = EXAMPLE / "valid"
SRC = ["--ann", str(VALID / "_annotations.coco.json"), "--images", str(VALID)]


@pytest.fixture(scope="module")
def cluster() -> Any:
    """A local cluster of 2 worker processes on 127.0.0.1, and a client of it (the tests' own)."""
    c = start_local_cluster(2)
    client = distributed.Client(c, set_as_default=False)
    yield c, client
    client.close()
    c.close()


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run_both(tmp_path: Path, scheduler: str, args: list[str], out: str = "--out") -> tuple[Path, Path]:
    """The command on the local engine (one process) and on the cluster; both must succeed."""
    a, b = tmp_path / "local", tmp_path / "dask"
    for folder, extra in ((a, ["--workers", "1"]), (b, ["--engine", "dask", "--scheduler", scheduler])):
        result = runner.invoke(app, [*args, out, str(folder), "--no-progress", *extra])
        assert result.exit_code == 0, result.output
    return a, b


COMMANDS = {
    "convert-masks": ["convert", "masks", *SRC],
    "eda": ["eda", *SRC, "--gallery", "0"],
    "augment-mosaic": ["augment", "mosaic", *SRC, "-n", "6", "--seed", "3"],
    "augment-copy-paste": ["augment", "copy-paste", *SRC, "-n", "6", "--seed", "3"],
    "folds": ["folds", *SRC, "--k", "3", "--seed", "4"],
    "clean": ["clean", *SRC, "--apply"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_dask_engine_gives_the_bytes_of_the_local_engine(cluster: Any, tmp_path: Path, name: str) -> None:
    a, b = run_both(tmp_path, cluster[0].scheduler_address, COMMANDS[name])
    local, dask = tree(a), tree(b)
    if name == "eda":  # the report page names its run (time taken); its tables and figures are what is compared
        local.pop("report.html"), dask.pop("report.html")
    assert len(local) > 1 and local == dask


def _fail_on(path: str, item: int) -> int:
    """A mapped function that records each call and fails on item 3 as a corrupt image would."""
    with open(path, "a") as fh:
        fh.write(f"{item}\n")
    if item == 3:
        raise DatatoolsError(f"image{item}.jpg: cannot decode")
    return item * 2


def test_a_data_failure_is_raised_once_and_not_retried(cluster: Any, tmp_path: Path) -> None:
    calls = tmp_path / "calls.txt"
    with use_engine("dask", scheduler=cluster[0].scheduler_address, retries=3):
        assert parallel_map(abs, [-1, 2, -3], progress=False) == [1, 2, 3]
        with pytest.raises(DatatoolsError, match="image3.jpg: cannot decode"):
            parallel_map(partial(_fail_on, str(calls)), list(range(8)), progress=False, chunksize=1)
    assert calls.read_text().split().count("3") == 1


def test_workers_that_cannot_see_the_input_fail_in_one_line(cluster: Any, tmp_path: Path) -> None:
    """A scheduler whose only worker runs in its own mount namespace, where the input folder is an empty tmpfs."""
    src = tmp_path / "in"
    shutil.copytree(VALID, src)
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    if shutil.which("unshare") is None or probe.returncode != 0:
        pytest.skip("needs unshare --mount (root or user namespaces) to hide a folder from a worker")
    sched = start_local_cluster(0)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    worker = subprocess.Popen(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c",
         f'mount -t tmpfs none "{src}" && exec "{sys.executable}" -m distributed.cli.dask_worker '
         f'{sched.scheduler_address} --host 127.0.0.1 --nworkers 1 --nthreads 1 --no-dashboard --no-nanny'],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        out = tmp_path / "out"
        result = runner.invoke(app, ["convert", "masks", "--ann", str(src / "_annotations.coco.json"), "--images",
                                     str(src), "--out", str(out), "--no-progress", "--engine", "dask",
                                     "--scheduler", sched.scheduler_address])
        assert result.exit_code == 2, result.output
        assert result.stderr.count("\n") == 1 and result.stderr.startswith(f"error: {src}")
        assert "does not see it" in result.stderr
        assert result.stdout == "" and sorted(p.name for p in tmp_path.iterdir()) == ["in"]  # nothing written
    finally:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        sched.close()


def test_scheduler_needs_the_dask_engine(tmp_path: Path) -> None:
    result = runner.invoke(app, ["convert", "masks", *SRC, "--out", str(tmp_path / "o"), "--scheduler",
                                 "tcp://127.0.0.1:8786"])
    assert result.exit_code == 2 and result.stderr == "error: --scheduler: needs --engine dask\n"
    assert not (tmp_path / "o").exists()


def test_the_dask_engine_without_dask_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if the [dask] extra were not installed
    monkeypatch.delitem(sys.modules, "datatools.core.dask_engine")
    result = runner.invoke(app, ["convert", "masks", *SRC, "--out", str(tmp_path / "o"), "--engine", "dask"])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1
    assert result.stderr.startswith("error: --engine dask needs Dask distributed")
    assert "datatools[dask]" in result.stderr
    assert not (tmp_path / "o").exists()


def test_ctrl_c_on_a_cluster_leaves_nothing_half_written(cluster: Any, tmp_path: Path) -> None:
    """Ctrl-C to a command whose batches run on the cluster: one line, exit 130, neither the output nor its
    staging folder left, and no batch of it still running on a worker (the command waited for them)."""
    from interrupts import Command

    from datatools.core.dask_engine import _executing

    n, side = 400, 768
    images = tmp_path / "src" / "images"
    images.mkdir(parents=True)
    cv2.imwrite(str(images / "img_0000.png"), np.random.default_rng(0).integers(0, 255, (side, side, 3), np.uint8))
    records, anns = [], []
    for i in range(n):
        if i:
            os.link(images / "img_0000.png", images / f"img_{i:04d}.png")
        records.append({"id": i + 1, "file_name": f"img_{i:04d}.png", "width": side, "height": side})
        anns.append({"id": i + 1, "image_id": i + 1, "category_id": 5, "iscrowd": 0, "area": 1e5,
                     "bbox": [10, 10, 600, 700], "segmentation": [[10.0, 10.0, 600.0, 40.0, 500.0, 700.0]]})
    ann = tmp_path / "src" / "annotations.json"
    ann.write_text(json.dumps({"images": records, "annotations": anns,
                               "categories": [{"id": 5, "name": "thing", "supercategory": ""}]}))
    outs = tmp_path / "outs"
    cmd = Command(["convert", "masks", "--ann", str(ann), "--images", str(images), "--out", str(outs / "masks"),
                   "--engine", "dask", "--scheduler", cluster[0].scheduler_address])
    cmd.wait_for(lambda: any(outs.glob(".masks.*.partial/ann_dir/*.png")))  # mid-run: workers are writing
    assert cmd.interrupt() == 130, cmd.stderr
    assert cmd.stderr == ["error: interrupted; nothing was written"]
    assert list(outs.iterdir()) == []
    assert not any(cluster[1].run(_executing, "datatools-").values())


# last: the killed worker is still being restarted when the module's cluster stops
class KillOnce(distributed.WorkerPlugin):
    """Kills its worker process (SIGKILL) as the first task whose key starts with ``prefix`` begins, once per
    cluster (a marker file says it was done)."""

    name = "test-kill-once"

    def __init__(self, prefix: str, marker: str) -> None:
        self.prefix, self.marker = prefix, marker

    def transition(self, key: Any, start: str, finish: str, **kwargs: Any) -> None:
        if finish == "executing" and str(key).startswith(self.prefix):
            try:
                fd = os.open(self.marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                return
            os.write(fd, str(os.getpid()).encode())
            os.close(fd)
            os.kill(os.getpid(), signal.SIGKILL)


def test_a_worker_killed_mid_run_has_its_items_rerun(cluster: Any, tmp_path: Path) -> None:
    c, client = cluster
    pids = set(client.run(os.getpid).values())
    marker = tmp_path / "killed"
    client.register_plugin(KillOnce("datatools-rasterising", str(marker)))
    try:
        a, b = run_both(tmp_path, c.scheduler_address, COMMANDS["convert-masks"])
    finally:
        client.unregister_worker_plugin(KillOnce.name)
    assert int(marker.read_text()) in pids  # one of the workers really died while rasterising
    assert tree(a) == tree(b) and len(tree(a)) > 1

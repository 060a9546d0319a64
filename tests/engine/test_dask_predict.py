"""``train predict`` and ``pseudo-label --ckpt`` with ``--engine dask``: the bytes of ``--engine local``, the model
loaded once per worker, and batches sent to the worker with a GPU when the device asks for one.

All traffic stays on 127.0.0.1: one local cluster of 2 worker processes (scheduler and workers bound to loopback,
no dashboard), one of them started with the Dask resource GPU=1 (a flag: there is no GPU; ``auto`` resolves to
the CPU on it), shared by the module's tests.
"""

from __future__ import annotations

import copy
import hashlib
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("segmentation_models_pytorch")
distributed = pytest.importorskip("distributed")

import cloudpickle  # noqa: E402 - a dependency of distributed
import dask  # noqa: E402
from distributed.utils import get_mp_context  # noqa: E402

sys.path.insert(0, str(Path(__file__).parents[1] / "train"))  # the trainer tests' tiny shapes

from tiny_shapes import write_dataset  # noqa: E402

from datatools.cli.main import app  # noqa: E402
from datatools.core.dask_engine import start_local_cluster  # noqa: E402 - needs distributed
from datatools.core.dataset import Dataset  # noqa: E402
from datatools.core.engine import use_engine  # noqa: E402
from datatools.core.errors import DatatoolsError  # noqa: E402
from datatools.core.parallel import parallel_map  # noqa: E402
from datatools_train.checkpoint import ModelSpec, save_checkpoint  # noqa: E402
from datatools_train.cluster_predict import gpu_resources  # noqa: E402
from datatools_train.config import Mode  # noqa: E402
from datatools_train.model import create_model  # noqa: E402

# the workers get this module's functions by value, instead of importing it
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.train
runner = CliRunner()
#: every run predicts batches of the same shape (2 images, 2 views): a process builds its convolution kernels once
SAME = ["--tta", "hflip", "--batch", "2", "--workers", "0"]


@pytest.fixture(scope="module")
def cluster() -> Any:
    """(scheduler address, client, address of the GPU=1 worker, address of the other worker).

    The worker processes fork from a server that imported torch and segmentation_models_pytorch once (importing
    them takes each fresh process about 10 s of CPU on this machine).
    """
    with dask.config.set({"distributed.worker.multiprocessing-method": "forkserver"}):
        get_mp_context().set_forkserver_preload(["distributed", "numpy", "pandas", "torch",
                                                 "segmentation_models_pytorch", "datatools_train.cluster_predict"])
        c = start_local_cluster(1)
        client = distributed.Client(c, set_as_default=False)
        c.new_spec = copy.deepcopy(c.new_spec)
        c.new_spec["options"]["resources"] = {"GPU": 1}
        c.scale(2)
        client.wait_for_workers(2, timeout=60)
    workers = client.scheduler_info(n_workers=-1)["workers"]
    gpu = [a for a, w in workers.items() if w.get("resources", {}).get("GPU")]
    assert len(gpu) == 1 and all(a.startswith("tcp://127.0.0.1:") for a in workers)
    client.run(_count_loads)
    yield c.scheduler_address, client, gpu[0], next(a for a in workers if a != gpu[0])
    client.close()
    c.close()


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    """(a dataset of 6 images of 64 px, two untrained checkpoints whose heads pick several classes)."""
    root = tmp_path_factory.mktemp("dask_predict")
    ds = write_dataset(root / "ds", 6, multilabel=False, seed=1)
    classes = tuple(Dataset.from_dir(ds).class_map().to_json())
    spec = ModelSpec("Unet", "resnet18", classes, Mode.MULTICLASS, (0.5,) * 3, (0.25,) * 3, 64)
    ckpts = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        model = create_model("Unet", "resnet18", classes=spec.num_outputs, weights=None)
        with torch.no_grad():
            model.segmentation_head[0].weight.mul_(50)
        save_checkpoint(root / f"m{seed}.pt", spec, model)
        ckpts.append(root / f"m{seed}.pt")
    return ds, ckpts


def _count_loads() -> None:
    """On a worker: record every checkpoint this process loads (``datatools_train.ensemble.LOADED``)."""
    import datatools_train.ensemble as ensemble

    if hasattr(ensemble, "LOADED"):
        return
    ensemble.LOADED = []  # type: ignore[attr-defined]
    load = ensemble.load_checkpoint

    def counted(path: Any, *args: Any, **kwargs: Any) -> Any:
        ensemble.LOADED.append(str(path))  # type: ignore[attr-defined]
        return load(path, *args, **kwargs)

    ensemble.load_checkpoint = counted  # type: ignore[assignment]


def _loaded() -> list[str]:
    import datatools_train.ensemble as ensemble

    return list(getattr(ensemble, "LOADED", []))


def tree(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file under ``folder``."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def run(out: Path, args: list[str], scheduler: str | None = None) -> dict[str, str]:
    """The command on the local engine, or on the cluster at ``scheduler``; it must succeed: its output's tree."""
    extra = ["--engine", "dask", "--scheduler", scheduler] if scheduler else []
    result = runner.invoke(app, [*args, "--out", str(out), "--no-progress", *extra])
    assert result.exit_code == 0, result.output
    return tree(out)


def predict_args(data: tuple[Path, list[Path]]) -> list[str]:
    ds, ckpts = data
    return ["train", "predict", "--ckpt", str(ckpts[0]), "--ckpt", str(ckpts[1]), "--data", str(ds), *SAME,
            "--save-probs", "--coco"]


@pytest.fixture(scope="module")
def local_predict(data: tuple[Path, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The tree of ``train predict`` on the local engine (masks, probabilities and coco/)."""
    local = run(tmp_path_factory.mktemp("local") / "out", [*predict_args(data), "--device", "cpu"])
    assert sum(k.startswith("ann_dir/") for k in local) == 6 and sum(k.startswith("probs/") for k in local) == 6
    assert "coco/annotations.json" in local
    return local


def predicting_workers(stream: Any) -> list[str]:
    """The worker of every predicting task of a task stream."""
    return [t["worker"] for t in stream.data if str(t["key"]).startswith("datatools-predicting")]


def test_predict_on_the_cluster_gives_the_local_bytes_and_loads_the_model_once_per_worker(
        cluster: Any, data: tuple[Path, list[Path]], local_predict: dict[str, str], tmp_path: Path) -> None:
    address, client, _, _ = cluster
    with distributed.get_task_stream(client=client) as stream:
        assert run(tmp_path / "dask", [*predict_args(data), "--device", "cpu"], address) == local_predict
    ran = predicting_workers(stream)
    assert len(ran) == 3 and max(map(ran.count, ran)) >= 2  # 6 images in batches of 2 on 2 workers
    ckpts = sorted(map(str, data[1]))
    for worker, loaded in client.run(_loaded).items():  # (the module's runs so far)
        mine = sorted(p for p in loaded if p in ckpts)
        assert mine == ckpts if worker in ran else mine in ([], ckpts), (worker, ran, loaded)


def test_pseudo_label_on_the_cluster_gives_the_local_dataset(cluster: Any, data: tuple[Path, list[Path]],
                                                            tmp_path: Path) -> None:
    ds, ckpts = data
    args = ["pseudo-label", "--ckpt", str(ckpts[0]), "--ckpt", str(ckpts[1]), "--data", str(ds), *SAME,
            "--threshold", "0.5", "--min-area", "4", "--device", "cpu"]
    local = run(tmp_path / "local", args)
    assert run(tmp_path / "dask", args, cluster[0]) == local
    assert "annotations.json" in local and sum(k.startswith("images/") for k in local) > 0


def test_a_device_that_wants_a_gpu_sends_every_batch_to_the_gpu_worker(
        cluster: Any, data: tuple[Path, list[Path]], local_predict: dict[str, str], tmp_path: Path) -> None:
    """``--device auto`` on a cluster where one worker offers the resource GPU: only that worker predicts (auto
    resolves to the CPU on it: no GPU on this machine, the resource is a flag); ``cpu`` asks for nothing."""
    address, client, gpu, _ = cluster
    with distributed.get_task_stream(client=client) as stream:
        assert run(tmp_path / "dask", [*predict_args(data), "--device", "auto"], address) == local_predict
    assert predicting_workers(stream) == [gpu] * 3
    assert gpu_resources("cuda", True) == {"GPU": 1} and gpu_resources("cuda:1", True) == {"GPU": 1}
    assert gpu_resources("auto", True) == {"GPU": 1} and gpu_resources("cpu", True) is None
    assert gpu_resources("cuda", False) is None  # no worker declares GPUs: any worker may run it


def test_resources_no_worker_offers_fail_in_one_line(cluster: Any) -> None:
    with use_engine("dask", scheduler=cluster[0]), pytest.raises(DatatoolsError) as err:
        parallel_map(abs, [-1, 2], progress=False, desc="predicting", resources={"TPU": 1})
    assert str(err.value) == ("predicting: no dask worker offers the resources TPU=1 (start such workers with "
                              "dask worker ... --resources TPU=1)")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a worker without CUDA")
def test_cuda_on_a_worker_without_one_is_one_line_and_nothing_written(cluster: Any, data: tuple[Path, list[Path]],
                                                                      tmp_path: Path) -> None:
    ds, ckpts = data
    result = runner.invoke(app, ["train", "predict", "--ckpt", str(ckpts[0]), "--data", str(ds), "--device", "cuda",
                                 "--out", str(tmp_path / "out"), "--no-progress", "--engine", "dask", "--scheduler",
                                 cluster[0]])
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert result.stderr.startswith(f"error: {ckpts[0]}: cannot load the model on this dask worker (")
    assert list(tmp_path.iterdir()) == []

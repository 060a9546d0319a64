"""Devices and several GPUs: torchrun + DistributedDataParallel, nothing home-made.

``torchrun --nproc-per-node 4 -m datatools_train fit ...`` sets ``WORLD_SIZE``/``RANK``/``LOCAL_RANK``; each
process then trains on its share of every epoch (``DistributedSampler``), gradients are averaged by DDP, metric
counts are summed with ``all_reduce``, and only rank 0 writes files and prints.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

__all__ = ["Runtime", "resolve_device", "setup"]


def resolve_device(device: str = "auto") -> Any:
    """``auto`` -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


@dataclass(frozen=True)
class Runtime:
    """This process's place in the run."""

    device: Any
    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        """Whether this process writes files and prints."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1

    def wrap(self, model: Any) -> Any:
        """DistributedDataParallel around ``model`` under torchrun, the model itself otherwise."""
        if not self.distributed:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def sum(self, tensor: Any) -> Any:
        """Sum a tensor over every process (identity without torchrun)."""
        if not self.distributed:
            return tensor
        import torch.distributed as dist

        t = tensor.to(self.device)
        dist.all_reduce(t)
        return t.to(tensor.device)

    def close(self) -> None:
        if self.distributed:
            import torch.distributed as dist

            dist.destroy_process_group()


def setup(device: str = "auto") -> Runtime:
    """Join the torchrun process group when there is one, and pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Runtime(resolve_device(device))
    import torch
    import torch.distributed as dist

    local = int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available() and device in ("auto", "cuda"):
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    else:
        dev = resolve_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo")
    return Runtime(dev, dist.get_rank(), dist.get_world_size())

"""Training throughput: the data loader alone against the training step alone, and batched TTA against one pass
per transform.

1. loader alone: ``train.data.SegmentationData`` (read JPEG, mask from the per-image cache, the default training
   augmentations, resize to ``--size``) through the ``DataLoader`` that ``fit`` builds, iterated without a model;
   a first pass fills the mask cache and is reported as "cold", the best of ``--repeat`` later passes as "warm";
2. step alone: one fixed batch already in memory, normalise + forward + loss (ce+dice) + backward + AdamW step,
   with AMP and channels-last on CUDA (as ``fit`` does);
3. TTA: ``train.tta.predict_probs`` over ``--tta`` views, all views of a batch in one forward pass (``fit``'s and
   ``predict``'s default) against one forward pass per view (``max_batch = batch``).

The loader is not the bottleneck when its samples/s exceeds the step's. The load average is printed before and
after: other jobs on the machine change every figure.

Run from the repository root::

    .venv/bin/python benchmarks/train_step.py [--ann A --images DIR] [--size 256] [--batch 8] [--workers 1]
        [--arch Unet --encoder resnet18] [--device auto] [--tta hflip,vflip,rot90]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import torch

from datatools.core.dataset import Dataset
from datatools_train.augment import build_transform
from datatools_train.config import Mode
from datatools_train.data import MaskSource, SegmentationData
from datatools_train.distributed import resolve_device
from datatools_train.engine import default_loader_workers, make_loader
from datatools_train.losses import build_loss
from datatools_train.tta import TTA, normalize, predict_probs
from datatools_train.weights import build_model

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT = REPO_ROOT / "examples" / "medical_waste" / "train"


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def loader_rate(data: SegmentationData, batch: int, workers: int, repeat: int) -> tuple[float, float]:
    """(cold, warm) samples/s of iterating the loader once over the data."""
    rates: list[float] = []
    for _ in range(repeat + 1):
        loader = make_loader(data, batch, workers=workers, shuffle=True, seed=len(rates))
        start = time.perf_counter()
        n = sum(len(x) for x, _ in loader)
        rates.append(n / (time.perf_counter() - start))
    return rates[0], max(rates[1:])


def step_rate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, steps: int) -> float:
    """samples/s of the training step on one batch held in memory."""
    loss_fn = build_loss("ce+dice", Mode.MULTICLASS)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    cuda = device.type == "cuda"
    dtype = torch.bfloat16 if cuda and torch.cuda.is_bf16_supported() else torch.float16
    model.train()

    def one() -> None:
        xb = normalize(x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
        if cuda:
            xb = xb.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=dtype, enabled=cuda):
            logits = model(xb)
        loss = loss_fn(logits.float(), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    one()  # warm-up: allocator, cudnn autotuning, oneDNN primitives
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        one()
    _sync(device)
    return steps * len(x) / (time.perf_counter() - start)


def tta_rates(model: torch.nn.Module, x: torch.Tensor, tta: TTA, device: torch.device,
              repeat: int) -> tuple[float, float, float]:
    """images/s of (batched TTA, one pass per view) and their largest absolute difference."""
    model.eval()
    xb = normalize(x, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))
    if device.type == "cuda":
        xb = xb.contiguous(memory_format=torch.channels_last)
    out = {}
    rates = {}
    with torch.inference_mode():
        for name, max_batch in (("batched", None), ("per_view", len(x))):
            predict_probs(model, xb, Mode.MULTICLASS, tta, max_batch=max_batch)  # warm-up
            best = float("inf")
            for _ in range(repeat):
                _sync(device)
                start = time.perf_counter()
                out[name] = predict_probs(model, xb, Mode.MULTICLASS, tta, max_batch=max_batch)
                _sync(device)
                best = min(best, time.perf_counter() - start)
            rates[name] = len(x) / best
    diff = float((out["batched"] - out["per_view"]).abs().max())
    return rates["batched"], rates["per_view"], diff


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--ann", type=Path, default=DEFAULT / "_annotations.coco.json")
    parser.add_argument("--images", type=Path, default=DEFAULT)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=None, help="loader workers [default: fit's default]")
    parser.add_argument("--arch", default="Unet")
    parser.add_argument("--encoder", default="resnet18")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--tta", default="hflip,vflip,rot90")
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()

    device = resolve_device(args.device)
    workers = default_loader_workers() if args.workers is None else args.workers
    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} cores, "
          f"torch threads {torch.get_num_threads()}, device {device}"
          + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""))
    ds = Dataset.load(args.ann, args.images, check_files=False)
    with tempfile.TemporaryDirectory() as cache:
        data = SegmentationData([MaskSource(ds, cache=Path(cache))], Mode.MULTICLASS,
                                build_transform(args.size, train=True))
        cold, warm = loader_rate(data, args.batch, workers, args.repeat)
        x, y = next(iter(make_loader(data, args.batch, workers=0, shuffle=False)))
    print(f"{len(ds.images)} images of {args.ann.parent.name}, {args.size} px, batch {args.batch}, "
          f"{args.arch}/{args.encoder}")
    print(f"loader alone ({workers} workers): {warm:8.1f} samples/s warm cache ({cold:.1f} cold, masks rasterised)")
    model = build_model(args.arch, args.encoder, 6, "none").to(device)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    x, y = x.to(device), y.clamp(max=5).to(device)
    step = step_rate(model, x, y, device, args.steps)
    print(f"training step alone:      {step:8.1f} samples/s  -> loader / step = {warm / step:.1f}x "
          f"({'loader is not' if warm > step else 'LOADER IS'} the bottleneck)")
    tta = TTA.parse(args.tta)
    batched, per_view, diff = tta_rates(model, x, tta, device, args.repeat)
    print(f"TTA {len(tta)} views ({args.tta}): batched {batched:.1f} images/s, one pass per view {per_view:.1f} "
          f"images/s -> {batched / per_view:.2f}x (max |difference| {diff:.1e})")
    print(f"load average after:  {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

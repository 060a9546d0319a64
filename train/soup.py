"""``datatools train soup``: model soups (Wortsman et al. 2022) over weights and buffers.

The uniform soup averages every checkpoint; the greedy soup walks the checkpoints from the best to the worst on
the validation set and keeps each one only if the running average does not get worse. Floating-point tensors
(weights, BatchNorm running statistics) are averaged; integer buffers (``num_batches_tracked``) are taken from
the first member. Every candidate is scored like ``fit`` validates: at the training size, on the validation set.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datatools.core.atomic import atomic_write_json, output_dir
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError

from .augment import build_transform
from .checkpoint import ModelSpec, load_checkpoint, save_checkpoint
from .data import MaskSource, SegmentationData
from .distributed import resolve_device
from .metrics import Scores, metric_name

__all__ = ["SoupResult", "average_states", "soup"]


@dataclass(frozen=True)
class SoupResult:
    """Scores of each checkpoint and of the soups; ``best`` names the file with the highest score."""

    out: Path
    metric: str
    members: dict[str, float]
    uniform: float
    greedy: float | None
    greedy_members: tuple[str, ...]
    best: str


def average_states(states: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Mean of state dicts, key by key: float tensors averaged, others taken from the first.

    Raises:
        InvalidDatasetError: the state dicts hold different keys or shapes (not the same architecture).

    Example:
        >>> soup_state = average_states([load_checkpoint(p)["model"] for p in paths])
    """
    import torch

    first = states[0]
    for k, state in enumerate(states[1:], start=2):
        if state.keys() != first.keys() or any(state[n].shape != first[n].shape for n in first):
            raise InvalidDatasetError(f"checkpoint {k} does not have the weights of checkpoint 1 (another "
                                      "architecture, encoder or class count); soups need one architecture")
    out = {}
    for name, tensor in first.items():
        if torch.is_floating_point(tensor):
            out[name] = torch.stack([s[name].double() for s in states]).mean(dim=0).to(tensor.dtype)
        else:
            out[name] = tensor.clone()
    return out


def soup(ckpts: Sequence[str | os.PathLike[str]], val: Dataset, out: str | os.PathLike[str], *,
         greedy: bool = False, batch: int = 8, workers: int | None = None, device: str = "auto",
         overwrite: bool = False, log: Any = None) -> SoupResult:
    """Average checkpoints into a uniform (and, with ``greedy``, a greedy) soup and score everything on ``val``.

    Writes ``uniform.pt``, ``greedy.pt`` (with ``greedy``) and ``soup.json`` (every score, the greedy members).

    Example:
        >>> res = soup(["runs/a/best.pt", "runs/b/best.pt"], ds.subset(val_ids), "soup/", greedy=True)
        >>> res.uniform, res.greedy
    """
    from .engine import make_loader, validate
    from .model import create_model

    if len(ckpts) < 2:
        raise InvalidDatasetError("a soup needs at least two --ckpt")
    loaded = [load_checkpoint(p) for p in ckpts]
    spec = ModelSpec.from_dict(loaded[0]["spec"])
    for path, ckpt in zip(ckpts[1:], loaded[1:], strict=True):
        other = ModelSpec.from_dict(ckpt["spec"])
        if (other.arch, other.encoder, other.mode, other.names) != (spec.arch, spec.encoder, spec.mode, spec.names):
            raise InvalidDatasetError(f"{path}: {other.arch}/{other.encoder} {other.mode.value} {list(other.names)} "
                                      f"differs from {ckpts[0]}; soups need one architecture and class list")
    expected = [(c["category_id"], c["name"]) for c in spec.classes[1:]]
    if [(c["id"], c["name"]) for c in val.categories] != expected:
        raise InvalidDatasetError(f"{val.source}: categories differ from the checkpoints' {expected}")
    if not val.images:
        raise InvalidDatasetError(f"{val.source}: no validation images")
    dev = resolve_device(device)
    overlap = str(loaded[0].get("config", {}).get("overlap", "smaller-on-top"))
    data = SegmentationData([MaskSource(val)], spec.mode, build_transform(spec.size, train=False), overlap=overlap)
    loader = make_loader(data, batch, workers=workers, shuffle=False, device=dev)
    model = create_model(spec.arch, spec.encoder, classes=spec.num_outputs, weights=None).to(dev)

    def score(state: dict[str, Any]) -> Scores:
        model.load_state_dict(state)
        return validate(model, loader, spec.mode, spec.names, spec, dev)[1]

    names = [str(p) for p in ckpts]
    states = [c["model"] for c in loaded]
    members = {n: score(s).score for n, s in zip(names, states, strict=True)}
    for n, v in members.items():
        _say(log, f"{n}: {v:.4f}")
    uniform_state = average_states(states)
    uniform = score(uniform_state).score
    _say(log, f"uniform soup of {len(states)}: {uniform:.4f}")
    results: dict[str, Any] = {"uniform.pt": uniform}
    greedy_score: float | None = None
    chosen: tuple[str, ...] = ()
    greedy_state = None
    if greedy:
        order = sorted(range(len(states)), key=lambda i: -_key(members[names[i]]))
        picked = [order[0]]
        greedy_score = members[names[order[0]]]
        for i in order[1:]:
            candidate = average_states([states[j] for j in [*picked, i]])
            value = score(candidate).score
            if _key(value) >= _key(greedy_score):
                picked.append(i)
                greedy_score, greedy_state = value, candidate
            _say(log, f"greedy: {'added' if picked[-1] == i else 'skipped'} {names[i]} -> {value:.4f}")
        greedy_state = greedy_state or states[order[0]]
        chosen = tuple(names[j] for j in picked)
        results["greedy.pt"] = greedy_score
    with output_dir(out, overwrite) as tmp:
        meta = {"metric": metric_name(spec.mode), "soup_of": names}
        save_checkpoint(tmp / "uniform.pt", spec, _Holder(uniform_state), score=uniform, **meta)
        if greedy_state is not None:
            save_checkpoint(tmp / "greedy.pt", spec, _Holder(greedy_state), score=greedy_score,
                            **{**meta, "soup_of": list(chosen)})
        best = max(results, key=lambda k: _key(results[k]))
        atomic_write_json(tmp / "soup.json", {
            "metric": metric_name(spec.mode), "members": members,
            "uniform": uniform, "greedy": greedy_score, "greedy_members": list(chosen), "best": best,
        }, indent=2)
    return SoupResult(Path(out), metric_name(spec.mode), members, uniform,
                      greedy_score, chosen, best)


class _Holder:
    """Lets :func:`save_checkpoint` take a bare state dict."""

    def __init__(self, state: dict[str, Any]) -> None:
        self._state = state

    def state_dict(self) -> dict[str, Any]:
        return self._state


def _key(value: float) -> float:
    return -float("inf") if value != value else value  # NaN ranks last


def _say(log: Any, message: str) -> None:
    if log is not None:
        log(message)

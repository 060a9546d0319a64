"""Initial weights of a new model: random (``none``), an smp weights name (``imagenet``) or a local file.

Nothing is downloaded unless the weights host answers: without a network, ``imagenet`` fails at once with a
message that says how to supply a file, instead of retrying for half a minute.
"""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from datatools.core.errors import DatatoolsError, UnreadableFileError

from .checkpoint import read_torch_file
from .model import create_model

__all__ = ["WeightsUnavailableError", "build_model"]


class WeightsUnavailableError(DatatoolsError, OSError):
    """Pretrained weights were asked for and cannot be had (no network, no local cache)."""


def _hub_reachable(timeout: float = 3.0) -> bool:
    from huggingface_hub import constants

    host = urlparse(constants.ENDPOINT).hostname or "huggingface.co"
    try:
        with socket.create_connection((host, 443), timeout=timeout):
            return True
    except OSError:
        return False


def _pretrained(arch: str, encoder: str, classes: int, weights: str) -> Any:
    from huggingface_hub import constants

    offline = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True  # first the local cache only: no network call, no retries
    try:
        return create_model(arch, encoder, classes, weights=weights)
    except (KeyError, ValueError):
        raise
    except Exception:  # not cached: fall through to the download
        pass
    finally:
        constants.HF_HUB_OFFLINE = offline
    hint = (f"download the {weights} weights of encoder {encoder} where there is a network (a state dict of the "
            f"encoder, e.g. a torchvision/timm .pth or the smp-hub model.safetensors) and pass --weights PATH, "
            f"or train from scratch with --weights none")
    if offline or not _hub_reachable():
        raise WeightsUnavailableError(f"--weights {weights}: the weights are not cached and the weights host cannot "
                                      f"be reached (no network?); {hint}")
    try:
        return create_model(arch, encoder, classes, weights=weights)
    except (KeyError, ValueError):
        raise
    except Exception as exc:
        raise WeightsUnavailableError(f"--weights {weights}: download failed ({type(exc).__name__}); {hint}") from None


def _read_state_dict(path: Path) -> dict[str, Any]:
    state: Any
    if not path.is_file():
        raise UnreadableFileError(f"{path}: weights file not found")
    if path.suffix != ".safetensors":
        state = read_torch_file(path, "a weights file")
    else:
        try:
            from safetensors.torch import load_file

            state = load_file(str(path), device="cpu")
        except FileNotFoundError:
            raise UnreadableFileError(f"{path}: weights file not found") from None
        except Exception:
            raise UnreadableFileError(f"{path}: not a weights file (not a readable safetensors file)") from None
    for key in ("model", "state_dict"):  # a datatools checkpoint, or a lightning/timm-style wrapper
        if isinstance(state, dict) and isinstance(state.get(key), dict):
            state = state[key]
    if not isinstance(state, dict):
        raise UnreadableFileError(f"{path}: holds no state dict")
    return state


def _load_file(model: Any, path: Path, encoder: str) -> None:
    state = _read_state_dict(path)
    model_keys = set(model.state_dict())
    if set(state) == model_keys:
        model.load_state_dict(state)
        return
    enc = {k.removeprefix("encoder."): v for k, v in state.items() if k.startswith("encoder.")}
    enc = enc or {k: v for k, v in state.items() if not k.startswith(("fc.", "classifier.", "head."))}
    try:
        model.encoder.load_state_dict(enc)
    except RuntimeError as exc:
        raise UnreadableFileError(f"{path}: weights fit neither the whole model nor the {encoder} encoder "
                                  f"({str(exc).splitlines()[0]} ...)") from None


def build_model(arch: str, encoder: str, classes: int, weights: str = "none") -> Any:
    """A new smp model with the requested initial weights.

    Args:
        arch: smp architecture.
        encoder: smp encoder.
        classes: output channels.
        weights: ``none``; an smp weights name such as ``imagenet`` (local cache first, then a download if the
            host answers); or a file: a whole-model state dict (a datatools checkpoint works) or an encoder state
            dict (torchvision/timm classifier heads are dropped).

    Raises:
        WeightsUnavailableError: pretrained weights cannot be had offline.
        UnreadableFileError: the weights file cannot be read or does not fit.
        DatatoolsError: unknown architecture, encoder or weights name.

    Example:
        >>> model = build_model("Unet", "resnet18", classes=5, weights="none")
    """
    try:
        path = Path(weights)
        if weights.lower() in ("none", "random", ""):
            return create_model(arch, encoder, classes, weights=None)
        if path.suffix in (".pt", ".pth", ".bin", ".safetensors", ".ckpt") or path.exists():
            model = create_model(arch, encoder, classes, weights=None)
            _load_file(model, path, encoder)
            return model
        return _pretrained(arch, encoder, classes, weights)
    except (KeyError, ValueError) as exc:  # smp's own messages list the valid names
        raise DatatoolsError(str(exc.args[0] if exc.args else exc)) from None

"""Saved probabilities: folders written by ``datatools train predict --save-probs``, averaged image by image.

A folder holds ``classes.json``, ``predict.json`` (its ``mode``) and ``probs/<file_name stem>.npz`` with ``probs``
(C, S, S) at the model's size (float16, or uint8 = round(p * 255)) and ``shape_hw`` of the image (see
``datatools_train.predict.load_probs``). Each image's probabilities are read, resized (bilinear, the resize of
the predict path) to the image, averaged over the folders, decided, and forgotten.
"""

from __future__ import annotations

import functools
import json
import os
import zipfile
from collections.abc import Iterator, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from datatools.core.classes import ClassMap
from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.core.parallel import parallel_imap

from ..rule import RuleConfig
from ..writer import ImageLabels
from .base import MULTICLASS, MULTILABEL, Decision, Target, check_categories, decide, sha256_of

__all__ = ["ProbabilitySource", "read_full_probs"]


def _probs_file(folder: Path, file_name: str) -> Path:
    return folder / "probs" / str(PurePosixPath(file_name).with_suffix(".npz"))


def _header(path: Path) -> tuple[tuple[int, ...], tuple[int, int]]:
    """``(probs shape, shape_hw)`` of a probability file, reading only the array headers."""
    try:
        with zipfile.ZipFile(path) as zf:
            with zf.open("probs.npy") as fh:
                version = np.lib.format.read_magic(fh)
                read = np.lib.format.read_array_header_1_0 if version == (1, 0) else \
                    np.lib.format.read_array_header_2_0
                shape, _, _ = read(fh)
            with zf.open("shape_hw.npy") as fh:
                hw = np.lib.format.read_array(fh, allow_pickle=False)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise UnreadableFileError(f"{path}: not a probability file of train predict --save-probs ({exc})") from None
    return tuple(int(v) for v in shape), (int(hw[0]), int(hw[1]))


def read_full_probs(files: Sequence[Path], size_hw: tuple[int, int]) -> npt.NDArray[np.float32]:
    """The mean of several saved probability files, resized to ``size_hw``: (C, H, W) float32.

    Example:
        >>> p = read_full_probs([Path("pred_a/probs/img1.npz"), Path("pred_b/probs/img1.npz")], (640, 640))
    """
    from datatools_train.predict import load_probs

    h, w = size_hw
    total: npt.NDArray[np.float32] | None = None
    for path in files:
        probs, shape = load_probs(path)
        if shape != (h, w):
            raise InvalidDatasetError(f"{path}: probabilities of a {shape[1]}x{shape[0]} image, the image is {w}x{h}")
        full = np.stack([cv2.resize(c, (w, h), interpolation=cv2.INTER_LINEAR) for c in probs])
        total = full if total is None else total + full
    assert total is not None
    return (total / len(files)).astype(np.float32, copy=False)


def _one(target: Target, folders: tuple[Path, ...], decision: Decision) -> ImageLabels:
    files = [_probs_file(f, target.file_name) for f in folders]
    labels = decide(read_full_probs(files, target.size_hw), decision)
    labels.files = [{"path": str(p), "sha256": sha256_of(p)} for p in files]
    return labels


class ProbabilitySource:
    """One or more ``train predict --save-probs`` folders (the ensemble is the mean of their probabilities).

    Raises:
        UnreadableFileError: a folder is not a predict output with saved probabilities.
        InvalidDatasetError: the folders disagree on classes or mode.

    Example:
        >>> src = ProbabilitySource(["pred_a/", "pred_b/"])
        >>> src.mode, src.names
        ('multiclass', ('background', 'Mask', 'syringe'))
    """

    kind = "probs"

    def __init__(self, folders: Sequence[str | os.PathLike[str]]) -> None:
        if not folders:
            raise InvalidDatasetError("give at least one --probs folder")
        self.folders = tuple(Path(f) for f in folders)
        modes, maps = [], []
        for folder in self.folders:
            if not (folder / "probs").is_dir():
                raise UnreadableFileError(f"{folder}: no probs/ folder; write one with datatools train predict "
                                          f"--save-probs")
            try:
                meta = json.loads((folder / "predict.json").read_text(encoding="utf-8"))
                modes.append(str(meta["mode"]))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise UnreadableFileError(f"{folder / 'predict.json'}: unreadable ({exc})") from None
            maps.append(ClassMap.load(folder / "classes.json"))
        self.class_map = maps[0]
        for folder, mode, cm in zip(self.folders, modes, maps, strict=True):
            if (mode, self._pairs(cm)) != (modes[0], self._pairs(maps[0])):
                raise InvalidDatasetError(f"{folder}: classes/mode {mode} {self._pairs(cm)} differ from "
                                          f"{self.folders[0]}: {modes[0]} {self._pairs(maps[0])}")
        self.mode = modes[0]
        if self.mode not in (MULTICLASS, MULTILABEL):
            raise UnreadableFileError(f"{self.folders[0] / 'predict.json'}: unknown mode {self.mode!r}")

    @staticmethod
    def _pairs(cm: ClassMap) -> list[tuple[int, str]]:
        return [(int(c.category_id or 0), c.name) for c in cm.classes]

    @property
    def names(self) -> tuple[str, ...]:
        names = tuple(c.name for c in self.class_map.classes)
        return ("background", *names) if self.mode == MULTICLASS else names

    def classes(self) -> list[tuple[int, str]]:
        return self._pairs(self.class_map)

    def check(self, targets: Sequence[Target], categories: Sequence[dict[str, Any]] | None, source: Any) -> None:
        """Every image has a probability file in every folder, of its size and of the classes' channel count."""
        if categories is not None:
            check_categories(str(self.folders[0] / "classes.json"), self.classes(), categories, source)
        for folder in self.folders:
            missing = [t.file_name for t in targets if not _probs_file(folder, t.file_name).is_file()]
            if missing:
                raise InvalidDatasetError(f"{folder}: no probabilities for {len(missing)} of the {len(targets)} "
                                          f"images (first: {missing[0]}); were they predicted from other images?")
            for t in targets:
                path = _probs_file(folder, t.file_name)
                shape, hw = _header(path)
                if hw != t.size_hw:
                    raise InvalidDatasetError(f"{path}: probabilities of a {hw[1]}x{hw[0]} image, {t.file_name} "
                                              f"is {t.size_hw[1]}x{t.size_hw[0]}")
                if len(shape) != 3 or shape[0] != len(self.names):
                    raise InvalidDatasetError(f"{path}: probabilities of shape {list(shape)}, expected "
                                              f"{len(self.names)} channels ({', '.join(self.names)})")

    def provenance(self) -> dict[str, Any]:
        folders = []
        for folder in self.folders:
            meta = json.loads((folder / "predict.json").read_text(encoding="utf-8"))
            folders.append({"path": str(folder), "ckpts": meta.get("ckpts"), "tta": meta.get("tta")})
        return {"kind": self.kind, "mode": self.mode, "folders": folders}

    def labels(self, targets: Sequence[Target], decision: Decision, rule: RuleConfig, *, workers: int | None,
               progress: bool) -> Iterator[ImageLabels]:
        fn = functools.partial(_one, folders=self.folders, decision=decision)
        yield from parallel_imap(fn, targets, workers=workers, desc="pseudo-labelling", progress=progress)

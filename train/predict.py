"""``datatools train predict``: masks, compact probabilities and competition CSVs from one or more checkpoints.

Output folder (written atomically)::

    out/
      ann_dir/<stem>.png | .npz   predicted masks, the layout of ``datatools convert masks`` (PNGs as palette or
                                  gray, ``--mask-format``)
      classes.json
      probs/<stem>.npz            --save-probs: ``probs`` (C, S, S) at the model size, float16 or uint8
                                  (probability * 255), plus ``shape_hw`` of the image; see :func:`load_probs`
      submission.csv              --submission class-ids | rle (see datatools convert submission)
      coco/                       --coco: annotations.json (an RLE per connected component and class) + images/
      overlays/<stem>.png         --overlays: image | prediction painted over it, with a legend (train.overlays)
      predict.json                what was run
"""

from __future__ import annotations

import contextlib
import io
import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.atomic import atomic_write_json, output_dir
from datatools.core.dataset import Dataset
from datatools.core.errors import InvalidDatasetError
from datatools.core.imageio import MaskFormat, encode_image, encode_mask_png, read_image
from datatools.formats.multilabel_npz import read_multilabel, write_multilabel
from datatools.formats.submission import write_class_ids_csv, write_rle_csv
from datatools.formats.submission_dir import SubmissionStyle

from .cluster_predict import driver_device, light, predictions
from .config import Mode
from .ensemble import Ensemble, Item
from .overlays import legend_entries, overlay_picture
from .predict_coco import PredictionWriter
from .sliding import SlidingWindow
from .thresholds import parse_thresholds
from .tta import TTA

__all__ = ["ProbsDtype", "PredictResult", "load_probs", "predict", "read_prediction"]


class ProbsDtype(str, Enum):
    FLOAT16 = "float16"
    UINT8 = "uint8"


@dataclass(frozen=True)
class PredictResult:
    out: Path
    images: int
    submission: Path | None
    thresholds: tuple[float, ...] | None


def _stem(file_name: str, suffix: str) -> str:
    return str(PurePosixPath(file_name).with_suffix(suffix))


def _npz_bytes(**arrays: npt.NDArray[Any]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            zf.writestr(zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0)), member.getvalue(),
                        compress_type=zipfile.ZIP_DEFLATED)
    return buf.getvalue()


def probs_bytes(probs: Any, shape_hw: tuple[int, int], dtype: ProbsDtype | str = ProbsDtype.UINT8) -> bytes:
    """Compact ``.npz`` bytes of (C, S, S) probabilities: float16, or uint8 holding round(p * 255)."""
    p = probs.float().clamp(0, 1).cpu().numpy()
    stored = p.astype(np.float16) if ProbsDtype(dtype) is ProbsDtype.FLOAT16 else np.rint(p * 255).astype(np.uint8)
    return _npz_bytes(probs=stored, shape_hw=np.asarray(shape_hw, dtype=np.int64))


def load_probs(path: str | os.PathLike[str]) -> tuple[npt.NDArray[np.float32], tuple[int, int]]:
    """Read saved probabilities as float32 (C, S, S) plus the image's ``(height, width)``; average several files
    and resize to the image to ensemble runs later.

    Example:
        >>> p, (h, w) = load_probs("pred_a/probs/img1.npz")
        >>> mean = (p + load_probs("pred_b/probs/img1.npz")[0]) / 2
    """
    with np.load(Path(path), allow_pickle=False) as data:
        stored, shape = data["probs"], data["shape_hw"]
    probs = stored.astype(np.float32) / 255.0 if stored.dtype == np.uint8 else stored.astype(np.float32)
    return probs, (int(shape[0]), int(shape[1]))


def read_prediction(out: str | os.PathLike[str], file_name: str) -> npt.NDArray[Any]:
    """A predicted mask back from a predict folder: (H, W) uint8 or (K, H, W) bool."""
    from PIL import Image

    ann = Path(out) / "ann_dir"
    npz = ann / _stem(file_name, ".npz")
    if npz.is_file():
        return read_multilabel(npz)
    with Image.open(ann / _stem(file_name, ".png")) as im:
        return np.asarray(im, dtype=np.uint8)


def _submission(out_dir: Path, csv: Path, style: SubmissionStyle, items: Sequence[Item], ens: Ensemble,
                size: int) -> None:
    names = [c.name for c in ens.spec.class_map().classes]
    if style is SubmissionStyle.CLASS_IDS:
        if ens.mode is Mode.MULTILABEL:
            raise InvalidDatasetError("--submission class-ids needs a multiclass model (class ids); use rle for "
                                      "multilabel ones")
        write_class_ids_csv(((it.file_name, read_prediction(out_dir, it.file_name)) for it in items), csv, size)
        return

    def rows() -> Iterator[tuple[str, str, npt.NDArray[np.bool_]]]:
        for it in items:
            mask = read_prediction(out_dir, it.file_name)
            name = PurePosixPath(it.file_name).name
            for value, cls in enumerate(names, start=1):
                yield name, cls, (mask[value - 1] if mask.ndim == 3 else mask == value)

    write_rle_csv(rows(), csv)


def predict(
    ckpts: Sequence[str | os.PathLike[str]],
    items: Sequence[Item],
    out: str | os.PathLike[str],
    *,
    tta: TTA | str | None = None,
    vote: bool = False,
    sliding: SlidingWindow | None = None,
    coco: bool = False,
    overlays: bool = False,
    save_probs: bool = False,
    probs_dtype: ProbsDtype | str = ProbsDtype.UINT8,
    submission: SubmissionStyle | str | None = None,
    submission_size: int = 256,
    thresholds: str | Sequence[float] | None = None,
    val: Dataset | None = None,
    batch: int = 8,
    workers: int | None = None,
    device: str = "auto",
    mask_format: MaskFormat | str = MaskFormat.PALETTE,
    overwrite: bool = False,
    progress: bool = True,
) -> PredictResult:
    """Predict masks for ``items`` with an ensemble of checkpoints.

    Args:
        ckpts: checkpoints (the same classes and mode); their probabilities are averaged.
        items: images (``items_from_dataset`` or ``items_from_folder``).
        out: output folder (see the module docstring).
        sliding: predict tile by tile at full resolution (:mod:`train.sliding`) instead of resizing each image.
        coco: also write ``coco/``, the predictions as a dataset folder (:mod:`train.predict_coco`).
        overlays: also write ``overlays/``, one picture per image: the image beside its prediction, with a legend
            (:mod:`train.overlays`).
        tta: views, e.g. ``"hflip,vflip,rot90,scale:0.75,1,1.25"``.
        vote: pixel majority vote of the models instead of the mean of probabilities.
        save_probs: also write compact probabilities for later ensembling.
        probs_dtype: ``uint8`` (4x smaller than float32) or ``float16``.
        submission: also write ``submission.csv`` in this style: ``class-ids`` or ``rle`` (the old names
            ``trash`` and ``xray`` are accepted).
        submission_size: side of the class-id masks of a ``class-ids`` submission.
        thresholds: multilabel: ``0.5``, one value per class, a ``thresholds.json`` of ``evaluate``, or ``auto``
            to search them on ``val`` first.
        val: validation images for ``thresholds="auto"``.
        batch: images per batch (all TTA views of a batch go through the model together).
        workers: DataLoader workers.
        device: ``auto``, ``cpu``, ``cuda`` (on a Dask cluster: the workers', see :mod:`train.cluster_predict`).
        mask_format: mask PNGs as ``palette`` or ``gray`` (:class:`~datatools.core.imageio.MaskFormat`).
        overwrite: replace a non-empty ``out``.
        progress: progress bar on a terminal.

    Example:
        >>> predict(["runs/a/best.pt"], items_from_folder("test/"), "pred/", tta="hflip,vflip", submission="class-ids")
    """
    ens = Ensemble(ckpts, driver_device(device))
    tta = tta if isinstance(tta, TTA) else TTA.parse(tta)
    kind = SubmissionStyle.parse(submission) if submission is not None else None
    mask_format = MaskFormat(mask_format)
    chosen: tuple[float, ...] | None = None
    if ens.mode is Mode.MULTILABEL:
        if isinstance(thresholds, str) and thresholds == "auto":
            if val is None:
                raise InvalidDatasetError("--thresholds auto needs a validation set (--val-ann/--val-images or "
                                          "--val-data)")
            from .evaluate import search_thresholds

            chosen = search_thresholds(ens, val, tta=tta, batch=batch, workers=workers, progress=progress,
                                       sliding=sliding)
        else:
            chosen = parse_thresholds(thresholds, ens.names)
    if not items:
        raise InvalidDatasetError("no images to predict")
    palette = ens.spec.class_map().palette()
    legend = legend_entries(ens.spec.class_map()) if overlays else []
    with output_dir(out, overwrite) as tmp, contextlib.ExitStack() as stack:
        (tmp / "ann_dir").mkdir()
        as_coco = stack.enter_context(PredictionWriter(tmp / "coco", ens.spec, ens.paths)) if coco else None
        for pred in predictions(ens, items, device=device, finish=light, tta=tta, vote=vote, thresholds=chosen,
                                batch=batch, workers=workers, progress=progress, sliding=sliding, keep_full=False):
            name = pred.item.file_name
            if ens.mode is Mode.MULTILABEL:
                dst = tmp / "ann_dir" / _stem(name, ".npz")
                dst.parent.mkdir(parents=True, exist_ok=True)
                write_multilabel(dst, pred.mask)
            else:
                dst = tmp / "ann_dir" / _stem(name, ".png")
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(encode_mask_png(pred.mask, palette, mask_format))
            if save_probs:
                pdst = tmp / "probs" / _stem(name, ".npz")
                pdst.parent.mkdir(parents=True, exist_ok=True)
                pdst.write_bytes(probs_bytes(pred.probs, (pred.item.height, pred.item.width), probs_dtype))
            if as_coco is not None:
                as_coco.add(pred.item, pred.mask)
            if overlays:
                odst = tmp / "overlays" / _stem(name, ".png")
                odst.parent.mkdir(parents=True, exist_ok=True)
                picture = overlay_picture(read_image(pred.item.path), pred.mask, palette, legend)
                odst.write_bytes(encode_image(picture, ".png"))
        if as_coco is not None:
            as_coco.finish()
            stack.close()  # coco/ moves into place inside the staged output
        ens.spec.class_map().save(tmp / "classes.json")
        csv = None
        if kind is not None:
            csv = Path(out) / "submission.csv"
            _submission(tmp, tmp / "submission.csv", kind, items, ens, submission_size)
        atomic_write_json(tmp / "predict.json", {
            "ckpts": [str(p) for p in ens.paths], "images": len(items), "mode": ens.mode.value,
            "tta": {"views": list(tta.views), "scales": list(tta.scales)}, "vote": vote,
            "sliding_window": None if sliding is None else {"tile": sliding.tile, "stride": sliding.stride,
                                                            "blend": sliding.blend},
            "thresholds": dict(zip(ens.names, chosen, strict=True)) if chosen else None,
            "submission": kind.value if kind else None, "mask_format": mask_format.value, "overlays": overlays,
        }, indent=2)
    return PredictResult(Path(out), len(items), csv, chosen)

"""Online augmentations: an albumentations pipeline read from YAML, with a sensible default.

A pipeline file is either a list of one-key mappings, ``- TransformName: {param: value}``, where a mapping may
hold ``transforms:`` for ``OneOf``/``SomeOf``/``Sequential``, or a file written by ``albumentations.save(...,
data_format="yaml")``. Images are first resized to the training size, so the pipeline works at that size, and
a final resize keeps every sample square (a crop in the pipeline is then scaled back up).

On datasets whose classes come in left/right (top/bottom) pairs, a sample the pipeline mirrored gets its paired
class values swapped in the mask (:mod:`datatools.core.lateral`, from the flips albumentations reports it applied),
so a flipped left lung is labelled a right lung.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from datatools.core.classes import ClassMap
from datatools.core.errors import InvalidDatasetError, UnreadableFileError
from datatools.core.lateral import LateralPairs, applied_mirrors, check_transforms, value_lut

__all__ = ["DEFAULT_AUG_YAML", "LateralTransform", "build_transform", "load_pipeline", "transform_names"]

#: The default training augmentations: cheap, label-preserving for most photos and scans.
DEFAULT_AUG_YAML = """\
- HorizontalFlip: {p: 0.5}
- Affine: {scale: [0.85, 1.15], translate_percent: [-0.06, 0.06], rotate: [-15, 15], border_mode: 0, p: 0.5}
- RandomBrightnessContrast: {brightness_limit: 0.2, contrast_limit: 0.2, p: 0.5}
"""


def _build(spec: Any, where: str) -> Any:
    import albumentations as A

    if not isinstance(spec, dict) or len(spec) != 1:
        raise InvalidDatasetError(f"{where}: each step is a one-key mapping like `- HorizontalFlip: {{p: 0.5}}`, "
                                  f"got {spec!r}")
    ((name, params),) = spec.items()
    params = dict(params or {})
    cls = getattr(A, str(name), None)
    if not isinstance(cls, type):
        raise InvalidDatasetError(f"{where}: {name!r} is not an albumentations transform")
    if "transforms" in params:
        params["transforms"] = [_build(s, where) for s in params["transforms"]]
    try:
        return cls(**params)
    except Exception as exc:  # albumentations validates with pydantic; its messages are good, keep them
        raise InvalidDatasetError(f"{where}: {name}: {exc}".replace("\n", " ")) from None


def load_pipeline(path: str | os.PathLike[str] | None) -> list[Any]:
    """The transforms of a pipeline YAML file (None: :data:`DEFAULT_AUG_YAML`).

    Raises:
        UnreadableFileError: the file is missing or not YAML.
        InvalidDatasetError: a step names no albumentations transform or has bad parameters.

    Example:
        >>> [type(t).__name__ for t in load_pipeline(None)]
        ['HorizontalFlip', 'Affine', 'RandomBrightnessContrast']
    """
    import albumentations as A
    import yaml

    where = str(path) if path is not None else "default augmentations"
    try:
        text = DEFAULT_AUG_YAML if path is None else Path(path).read_text(encoding="utf-8")
        spec = yaml.safe_load(text)
    except FileNotFoundError:
        raise UnreadableFileError(f"{path}: augmentation file not found") from None
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise UnreadableFileError(f"{path}: not a readable YAML file ({exc})".replace("\n", " ")) from None
    if isinstance(spec, dict) and "transform" in spec:  # albumentations' own serialisation
        try:
            return list(A.from_dict(spec).transforms)
        except Exception as exc:
            raise InvalidDatasetError(f"{where}: not an albumentations pipeline ({exc})") from None
    if spec is None:
        return []
    if not isinstance(spec, list):
        raise InvalidDatasetError(f"{where}: expected a list of transforms, got {type(spec).__name__}")
    return [_build(s, where) for s in spec]


def transform_names(transforms: list[Any]) -> list[str]:
    """The class names of ``transforms`` and of every transform nested in them (``OneOf`` and the like)."""
    names: list[str] = []
    for t in transforms:
        names.append(type(t).__name__)
        names += transform_names(list(getattr(t, "transforms", None) or []))
    return names


class LateralTransform:
    """A ``Compose`` whose mirrored samples get their paired class values swapped in the mask.

    Multiclass masks (H, W) have their values swapped through a lookup table; multilabel planes (H, W, K) have
    their planes swapped. ``set_random_seed`` reaches the wrapped pipeline (DataLoader workers call it).

    Example:
        >>> t = LateralTransform(A.Compose([A.HorizontalFlip(p=1.0)]), pairs, class_map)
        >>> t(image=image, mask=mask)["mask"]   # left_x pixels now right_x, on the other side
    """

    def __init__(self, compose: Any, pairs: LateralPairs, class_map: ClassMap) -> None:
        compose.save_applied_params = True
        self.compose = compose
        self.pairs = pairs
        value_of = {int(c.category_id): c.value for c in class_map.classes if c.category_id is not None}
        self._luts = {(h, v): value_lut(pairs.mirror_map(h, v), value_of) for h in (False, True) for v in (False, True)}

    def set_random_seed(self, seed: int) -> None:
        self.compose.set_random_seed(seed)

    def __call__(self, **data: Any) -> dict[str, Any]:
        out = dict(self.compose(**data))
        lut = self._luts[applied_mirrors(out.pop("applied_transforms", []))]
        if "mask" in out and not np.array_equal(lut, np.arange(256)):
            out["mask"] = _swap(np.asarray(out["mask"]), lut)
        return out


def _swap(mask: npt.NDArray[np.uint8], lut: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if mask.ndim == 2:
        return lut[mask]
    order = [int(lut[k + 1]) - 1 for k in range(mask.shape[-1])]  # plane k holds class value k + 1
    return mask[..., order]


def build_transform(size: int, *, train: bool, aug: str | os.PathLike[str] | None = None, seed: int = 0,
                    lateral: tuple[LateralPairs, ClassMap] | None = None) -> Any:
    """Resize to ``size`` x ``size`` (+ the augmentations when ``train``) as one ``albumentations.Compose``.

    Masks are resized with nearest neighbour, so class values and the ignore value 255 survive. With ``lateral``
    (pairs and the class map of the masks) and pairs to swap, the training pipeline is a :class:`LateralTransform`.

    Raises:
        DatatoolsError: the pipeline may turn images by quarter turns on a dataset with pairs found by ``auto``
            (:func:`datatools.core.lateral.check_transforms`).

    Example:
        >>> t = build_transform(256, train=True)
        >>> t(image=np.zeros((640, 480, 3), np.uint8), mask=np.zeros((640, 480), np.uint8))["image"].shape
        (256, 256, 3)
    """
    import albumentations as A

    from .resize import IMAGE_INTERPOLATION, MASK_INTERPOLATION

    resize = A.Resize(size, size, interpolation=IMAGE_INTERPOLATION, mask_interpolation=MASK_INTERPOLATION)
    steps = [resize, *load_pipeline(aug), A.Resize(size, size)] if train else [resize]
    compose = A.Compose(steps, seed=seed)
    if not train or lateral is None or not lateral[0]:
        return compose
    pairs, class_map = lateral
    check_transforms(pairs, transform_names(steps), str(aug) if aug else "default augmentations")
    return LateralTransform(compose, pairs, class_map)

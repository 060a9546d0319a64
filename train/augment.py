"""Online augmentations: an albumentations pipeline read from YAML, with a sensible default.

A pipeline file is either a list of one-key mappings, ``- TransformName: {param: value}``, where a mapping may
hold ``transforms:`` for ``OneOf``/``SomeOf``/``Sequential``, or a file written by ``albumentations.save(...,
data_format="yaml")``. Images are first resized to the training size, so the pipeline works at that size, and
a final resize keeps every sample square (a crop in the pipeline is then scaled back up).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from datatools.core.errors import InvalidDatasetError, UnreadableFileError

__all__ = ["DEFAULT_AUG_YAML", "build_transform", "load_pipeline"]

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


def build_transform(size: int, *, train: bool, aug: str | os.PathLike[str] | None = None, seed: int = 0) -> Any:
    """Resize to ``size`` x ``size`` (+ the augmentations when ``train``) as one ``albumentations.Compose``.

    Masks are resized with nearest neighbour, so class values and the ignore value 255 survive.

    Example:
        >>> t = build_transform(256, train=True)
        >>> t(image=np.zeros((640, 480, 3), np.uint8), mask=np.zeros((640, 480), np.uint8))["image"].shape
        (256, 256, 3)
    """
    import albumentations as A
    import cv2

    resize = A.Resize(size, size, interpolation=cv2.INTER_AREA)
    steps = [resize, *load_pipeline(aug), A.Resize(size, size)] if train else [resize]
    return A.Compose(steps, seed=seed)

"""datatools_train (the folder train/): a thin segmentation_models_pytorch trainer over datatools datasets
(extra ``[train]``).

Importing this package does not import torch; the modules that build models do, when they are used.
"""

from __future__ import annotations

__all__ = ["create_model"]


def __getattr__(name: str):  # noqa: ANN202 - lazy export keeps `import datatools_train` free of torch
    if name == "create_model":
        from .model import create_model

        return create_model
    raise AttributeError(name)

"""artstyle: recognise the art movement of a painting.

    from artstyle import StyleClassifier
    clf = StyleClassifier(backbone="efficientnet_lite0").fit("paintings/")
    clf.save("model/")

Names are imported on first use, so `import artstyle` stays cheap (no torch) until
a model is actually needed.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"


def default_model_path() -> Path:
    """Folder of the model that ships with artstyle (used when no --model is given).

    Trained by `scripts/train_default_model.sh`; see MODEL_CARD.md beside it.
    """
    return Path(__file__).parent / "models" / "default"

_EXPORTS = {
    "ArtstyleError": "errors",
    "BundleError": "errors",
    "DatasetError": "errors",
    "DownloadError": "errors",
    "ImageLoadError": "errors",
    "NotFittedError": "errors",
    "BackboneInfo": "backbones",
    "available_backbones": "backbones",
    "load_backbone": "backbones",
    "register_backbone": "backbones",
    "load_bundle": "bundle",
    "save_bundle": "bundle",
    "Evaluation": "classifier",
    "StyleClassifier": "classifier",
    "Dataset": "dataset",
    "ImageRecord": "dataset",
    "scan_dataset": "dataset",
    "load_image": "images",
    "normalize_label": "labels",
    "Prediction": "predict",
    "Split": "splits",
    "make_split": "splits",
    "non_paintings": "negatives",
    "RECIPES": "recipes",
    "FeatureRecipe": "recipes",
    "HEAD_KINDS": "head",
    "PaintingDetector": "painting",
    "create_app": "serve",
    "check_dataset": "doctor",
    "DatasetCheck": "doctor",
    "get_dataset": "download",
}

__all__ = ["__version__", "default_model_path", *sorted(_EXPORTS)]


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'artstyle' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__


if TYPE_CHECKING:  # pragma: no cover - for type checkers and IDEs only
    from .backbones import BackboneInfo, available_backbones, load_backbone, register_backbone
    from .bundle import load_bundle, save_bundle
    from .classifier import Evaluation, StyleClassifier
    from .dataset import Dataset, ImageRecord, scan_dataset
    from .errors import ArtstyleError, BundleError, DatasetError, DownloadError, ImageLoadError, NotFittedError
    from .images import load_image
    from .head import HEAD_KINDS
    from .labels import normalize_label
    from .negatives import non_paintings
    from .painting import PaintingDetector
    from .predict import Prediction
    from .recipes import RECIPES, FeatureRecipe
    from .doctor import DatasetCheck, check_dataset
    from .download import get_dataset
    from .serve import create_app
    from .splits import Split, make_split

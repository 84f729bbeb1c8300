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
    return Path(__file__).parent / "assets" / "default_model"


_EXPORTS = {
    "ArtstyleError": "errors",
    "BundleError": "errors",
    "DatasetError": "errors",
    "DownloadError": "errors",
    "ImageLoadError": "errors",
    "NotFittedError": "errors",
    "BackboneInfo": "features.backbones",
    "available_backbones": "features.backbones",
    "load_backbone": "features.backbones",
    "register_backbone": "features.backbones",
    "FineTuning": "features.finetune_recipe",
    "finetune_backbone": "features.finetune",
    "load_bundle": "model.bundle",
    "save_bundle": "model.bundle",
    "Evaluation": "model.evaluation",
    "StyleClassifier": "model.classifier",
    "Dataset": "data.dataset",
    "ImageRecord": "data.dataset",
    "scan_dataset": "data.dataset",
    "load_image": "data.images",
    "normalize_label": "data.labels",
    "Prediction": "model.prediction",
    "SimilarityIndex": "model.similar",
    "SimilarPaintings": "model.similar",
    "Neighbour": "model.similar",
    "Explanation": "model.explain",
    "deletion_test": "model.explain",
    "Split": "data.splits",
    "make_split": "data.splits",
    "make_folds": "data.splits",
    "size_profile": "data.sizes",
    "Resized": "data.images",
    "SizeVariants": "features.size_variants",
    "BALANCINGS": "model.balancing",
    "RowWeighting": "model.balancing",
    "recording": "timing",
    "non_paintings": "model.negatives",
    "RECIPES": "features.recipes",
    "FeatureRecipe": "features.recipes",
    "HEAD_KINDS": "model.head",
    "Head": "model.head",
    "register_head": "model.head",
    "head_from_tensors": "model.head",
    "PaintingDetector": "model.painting",
    "SizeBandHead": "model.size_bands",
    "create_app": "apps.serve",
    "check_dataset": "data.doctor",
    "DatasetCheck": "data.doctor",
    "get_dataset": "data.download",
    "quantize_model": "model.quantize",
    "Quantized": "model.quantize",
    "PRECISIONS": "features.int8",
    "zero_shot_classifier": "model.zero_shot",
    "PANDORA_MOVEMENTS": "data.labels",
    "MOVEMENT_FAMILIES": "data.families",
    "Families": "data.families",
    "family_of": "data.families",
    "read_manifest": "data.manifest",
    "Manifest": "data.manifest",
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
    from .apps.serve import create_app
    from .data.dataset import Dataset, ImageRecord, scan_dataset
    from .data.doctor import DatasetCheck, check_dataset
    from .data.download import get_dataset
    from .data.families import MOVEMENT_FAMILIES, Families, family_of
    from .data.images import Resized, load_image
    from .data.labels import PANDORA_MOVEMENTS, normalize_label
    from .data.manifest import Manifest, read_manifest
    from .data.sizes import size_profile
    from .data.splits import Split, make_folds, make_split
    from .errors import ArtstyleError, BundleError, DatasetError, DownloadError, ImageLoadError, NotFittedError
    from .features.backbones import BackboneInfo, available_backbones, load_backbone, register_backbone
    from .features.finetune import finetune_backbone
    from .features.finetune_recipe import FineTuning
    from .features.int8 import PRECISIONS
    from .features.recipes import RECIPES, FeatureRecipe
    from .features.size_variants import SizeVariants
    from .model.balancing import BALANCINGS, RowWeighting
    from .model.bundle import load_bundle, save_bundle
    from .model.classifier import StyleClassifier
    from .model.evaluation import Evaluation
    from .model.explain import Explanation, deletion_test
    from .model.head import HEAD_KINDS, Head, head_from_tensors, register_head
    from .model.negatives import non_paintings
    from .model.painting import PaintingDetector
    from .model.prediction import Prediction
    from .model.quantize import Quantized, quantize_model
    from .model.similar import Neighbour, SimilarityIndex, SimilarPaintings
    from .model.size_bands import SizeBandHead
    from .model.zero_shot import zero_shot_classifier
    from .timing import recording

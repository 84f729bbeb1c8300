"""The estimator's side of the model folder: what a fitted classifier records in config.json
(its backbones by digest, file name and hub id, never a path), where a loaded one finds its
weights, and a classifier fitted from a folder's contents."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .. import __version__
from ..errors import ArtstyleError
from ..features.backbones import resolve_engine
from ..features.int8 import choose_precision
from ..features.recipes import get_recipe
from .bundle import BACKBONE_FILE, FORMAT_NAME, FORMAT_VERSION, Bundle, has_int8, int8_weight_range, load_int8_graphs
from .calibration import Abstention

if TYPE_CHECKING:
    from ..data.splits import Split
    from .training import TrainedHead


def registry_row(name: str):
    """A named backbone's registry row (None for `timm:` models)."""
    from ..features.backbones import get_info

    try:
        return get_info(name)
    except ArtstyleError:
        return None


def weights_to_run(backbones: list[dict], given: str | os.PathLike | None) -> str | os.PathLike | None:
    """The weights file a loaded model's single backbone runs from: the one given, else
    `ARTSTYLE_WEIGHTS`, else the path an older folder recorded if it is still there (folders
    no longer record paths: they travel), else None: the hub's copy. The digest is checked when
    the network is built."""
    if len(backbones) != 1:
        return given  # None, or refused by name when the network is built: --weights is for one backbone
    recorded = backbones[0].get("weights")
    if recorded == BACKBONE_FILE:  # fine-tuned: the folder's own file
        return None
    if given or os.environ.get("ARTSTYLE_WEIGHTS"):
        return given or os.environ["ARTSTYLE_WEIGHTS"]
    return recorded if recorded and Path(recorded).expanduser().is_file() else None


def backbone_records(clf) -> list[dict]:
    """What config.json records of each backbone: its weights by digest, file name and hub
    id, never the trainer's path (the file is found where the model runs and checked)."""
    return [
        {
            "name": e.backbone.name,
            "weights": BACKBONE_FILE if clf.finetuned_ else None,
            "weights_id": e.backbone.weights_id,
            **({"weights_file": Path(clf.weights).name} if clf.weights and not clf.finetuned_ else {}),
            **({"hub": f"{info.hf_hub}/{info.filename}"} if (info := registry_row(e.backbone.name))
               and info.hf_hub else {}),
            "dim": e.dim,
            "preprocessing": e.preprocessing.to_dict(),
            **({"finetuned": clf.finetuned_} if clf.finetuned_ else {}),
        }
        for e in clf.feature_extractors
    ]

def fitted_config(clf, trained: TrainedHead, split: Split, fold_mode: str, dataset: dict, n_skipped: int, dim: int) -> dict:
    """config.json of the model folder `clf` fitted: how it was made and what it needs to run."""
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "artstyle_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "features": {
            "recipe": get_recipe(clf.features).name,
            "backbones": backbone_records(clf),
            "dim": int(dim),
        },
        "labels": [str(c) for c in clf.classes_],
        "balance": clf.balance,
        "size_variants": clf.size_variants.to_dict() if clf.size_variants else None,
        "temperature": trained.head.temperature,
        "head": trained.info,
        "abstention": trained.abstention.to_dict(),
        "painting_detector": trained.detector.config() if trained.detector else None,
        "split": {
            "mode": split.mode, "seed": split.seed, "counts": split.counts(), "untested": split.untested,
            "cv_grouping": fold_mode,
        },
        "dataset": {**dataset, "skipped": n_skipped},
    }


def adopt_bundle(clf, bundle: Bundle, path: str | os.PathLike, precision: str):
    """`clf` (built for the folder's backbones and recipe) fitted with what the folder at `path`
    holds: head, thresholds, detector, index, graphs, labels, split and scores."""
    features = bundle.config["features"]
    clf.config_ = bundle.config
    clf.backbone_weights_ = bundle.backbone
    clf.finetuned_ = features["backbones"][0].get("finetuned")
    clf.head_ = bundle.head
    clf.abstention_ = Abstention.from_config(bundle.config)
    clf.painting_detector_ = bundle.detector
    clf.similar_ = bundle.similar
    clf.graphs_ = bundle.graphs
    clf.precision_ = choose_precision(precision, has_int8(bundle.config), resolve_engine(clf.engine), str(path),
                                      int8_weight_range(bundle.config))
    clf.int8_graphs_ = load_int8_graphs(path, bundle.config) if clf.precision_ == "int8" else None
    clf.classes_ = np.array(bundle.labels)
    clf.splits_csv_ = bundle.splits_csv
    clf.metrics_ = bundle.metrics
    return clf

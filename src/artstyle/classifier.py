"""StyleClassifier: the scikit-learn-style estimator that ties the pipeline together.

    scan (dataset) -> split (splits) -> embed (features) -> fit head (head) -> bundle

    >>> clf = StyleClassifier(backbone="efficientnet_lite0").fit("paintings/")
    >>> clf.predict(["mystery.jpg"])
    ['impressionism']
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

import numpy as np

from . import __version__
from .backbones import DEFAULT_BACKBONE, Backbone, load_backbone
from .bundle import FORMAT_NAME, FORMAT_VERSION, Bundle, load_bundle, save_bundle
from .cache import FeatureCache, default_cache_dir
from .dataset import Dataset, ImageRecord, scan_dataset
from .errors import ArtstyleError, DatasetError, ImageLoadError, NotFittedError
from .features import DEFAULT_BATCH_SIZE, Extraction, content_key, extract_features
from .head import fit_linear_head
from .images import ImageInput
from .labels import normalize_label
from .metrics import classification_metrics
from .predict import Prediction
from .preprocess import Preprocessing
from .splits import SPLIT_MODES, make_split, parse_splits_csv, splits_csv

log = logging.getLogger("artstyle")


@dataclass
class Evaluation:
    """Scores on a set of labelled images, plus what the report needs to show them."""

    metrics: dict
    labels: list[str]
    paths: list[str]
    y_true: np.ndarray
    proba: np.ndarray


def _source_name(source: ImageInput, index: int) -> str:
    return f"<image {index}>" if not isinstance(source, (str, os.PathLike)) else str(source)


def _skipped(unreadable: list[tuple[str, str]], records: Sequence[ImageRecord], errors: dict[int, str]) -> list[dict]:
    """Files left out (unreadable at scan, undecodable at extraction), each reported on one line."""
    skipped = [{"path": p, "reason": reason} for p, reason in unreadable]
    skipped += [{"path": records[i].path, "reason": reason} for i, reason in sorted(errors.items())]
    for item in skipped:
        log.warning("%s: %s", item["path"], item["reason"])
    if skipped:
        log.warning("%d unreadable file(s) skipped", len(skipped))
    return skipped


class StyleClassifier:
    """Art-movement classifier on frozen ImageNet features.

    Parameters follow scikit-learn conventions: they are stored as given and checked
    in `fit`. Fitted state ends in an underscore (`classes_`, `head_`).
    `cache_dir=None` uses the user cache folder; `cache_dir=False` caches nothing.
    """

    def __init__(
        self,
        backbone: str = DEFAULT_BACKBONE,
        *,
        weights: str | os.PathLike | None = None,
        split: str = "stratified",
        seed: int = 0,
        cache_dir: str | os.PathLike | Literal[False] | None = None,
        batch_size: int = DEFAULT_BATCH_SIZE,
        workers: int | None = None,
        show_progress: bool = True,
    ):
        self.backbone = backbone
        self.weights = weights
        self.split = split
        self.seed = seed
        self.cache_dir = cache_dir
        self.batch_size = batch_size
        self.workers = workers
        self.show_progress = show_progress
        self._backbone: Backbone | None = None

    # ----------------------------------------------------------------- plumbing
    def _get_backbone(self) -> Backbone:
        if self._backbone is None:
            self._backbone = load_backbone(self.backbone, self.weights)
            recorded = getattr(self, "config_", None)
            if recorded is not None:
                # The bundle's preprocessing is authoritative, whatever timm now defaults to.
                self._backbone.preprocessing = Preprocessing.from_dict(recorded["preprocessing"])
                if recorded["backbone"].get("weights_id") not in (None, self._backbone.weights_id):
                    log.warning("backbone weights differ from the ones this model was trained with")
        return self._backbone

    def _cache(self) -> FeatureCache | None:
        if self.cache_dir is False:
            return None
        root = self.cache_dir if self.cache_dir is not None else default_cache_dir()
        return FeatureCache(root, self._get_backbone().identity())

    def _embed(self, sources: Sequence[ImageInput], keys: Sequence[str] | None, description: str) -> Extraction:
        return extract_features(
            sources,
            self._get_backbone(),
            keys=keys,
            cache=self._cache(),
            batch_size=self.batch_size,
            workers=self.workers,
            show_progress=self.show_progress,
            description=description,
        )

    def _check_fitted(self) -> None:
        if not hasattr(self, "head_"):
            raise NotFittedError("this StyleClassifier is not fitted yet; call fit() or StyleClassifier.load()")

    @property
    def n_features_in_(self) -> int:
        self._check_fitted()
        return self.head_.dim

    # ---------------------------------------------------------------------- fit
    def fit(
        self,
        data: str | os.PathLike | Dataset | Sequence[ImageInput],
        y: Sequence[str] | None = None,
        *,
        test_dir: str | os.PathLike | None = None,
    ) -> "StyleClassifier":
        """Train on a painting tree (path or scanned Dataset), or on images `data` with labels `y`.

        The data are split (stratified or by artist), the head is fitted on train,
        tuned and calibrated on val, and scored on test (or on `test_dir`).
        """
        if self.split not in SPLIT_MODES:
            raise ArtstyleError(f"unknown split {self.split!r}; choose one of {', '.join(SPLIT_MODES)}")
        records, sources, dataset_summary, unreadable = self._training_inputs(data, y)
        split = make_split(records, self.split, seed=self.seed, test_fraction=0.0 if test_dir else 0.1)
        extraction = self._embed(sources, [r.sha256 for r in records], "Extracting features")
        log.info("features: %d reused from cache, %d computed", extraction.n_cached, extraction.n_computed)
        skipped = _skipped(unreadable, records, extraction.errors)
        ok = extraction.ok

        labels = sorted({records[i].label for i in split.select(records, "train") if ok[i]})
        dropped = sorted({r.label for r in records} - set(labels))
        if dropped:
            log.warning("no readable training images for %s: left out of the model", ", ".join(dropped))
        if len(labels) < 2:
            raise DatasetError("need at least two classes with readable training images")
        index = {label: i for i, label in enumerate(labels)}
        y_all = np.array([index.get(r.label, -1) for r in records])
        usable = ok & (y_all >= 0)

        def rows(name: str) -> np.ndarray:
            return np.array([i for i in split.select(records, name) if usable[i]], dtype=np.int64)

        train, val, test = rows("train"), rows("val"), rows("test")
        x = extraction.features
        head, head_info = fit_linear_head(x[train], y_all[train], len(labels), x[val], y_all[val])
        self.classes_ = np.array(labels)
        self.head_ = head
        backbone = self._get_backbone()
        self.config_ = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "artstyle_version": __version__,
            "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "backbone": {
                "name": backbone.name,
                "weights": str(self.weights) if self.weights else None,
                "weights_id": backbone.weights_id,
                "feature_dim": backbone.feature_dim,
            },
            "preprocessing": backbone.preprocessing.to_dict(),
            "labels": labels,
            "temperature": head.temperature,
            "head": head_info,
            "split": {"mode": split.mode, "seed": split.seed, "counts": split.counts(), "untested": split.untested},
            "dataset": {**dataset_summary, "skipped": len(skipped)},
        }
        self.splits_csv_ = splits_csv(records, split)
        if test_dir is not None:
            evaluation = self.evaluate(test_dir)  # copies of training images are left out
            self.metrics_ = {"evaluated_on": str(test_dir), **evaluation.metrics}
        else:
            metrics = classification_metrics(y_all[test], head.predict_proba(x[test]), labels)
            self.metrics_ = {"evaluated_on": "test split", **metrics, "skipped": skipped}
        return self

    def _training_inputs(self, data, y):
        """(records, sources, dataset summary, unreadable files) from a tree or from images + labels."""
        if y is None:
            dataset = data if isinstance(data, Dataset) else scan_dataset(data, show_progress=self.show_progress)
            sources = [dataset.abspath(r) for r in dataset.records]
            summary = dataset.summary()
            if sum(dataset.ignored.values()):
                log.info("ignored %s", ", ".join(f"{n} {why}" for why, n in sorted(dataset.ignored.items())))
            dupes = dataset.conflicting_duplicates()
            for group in dupes:
                log.warning("identical files in different classes: %s", ", ".join(r.path for r in group))
            return list(dataset.records), sources, summary, dataset.unreadable
        if isinstance(data, (str, os.PathLike)) or len(data) != len(y):
            raise ArtstyleError("fit(images, y) needs one label per image")
        records = [
            ImageRecord(_source_name(src, i), normalize_label(str(label)), "unknown", content_key(src))
            for i, (src, label) in enumerate(zip(data, y))
        ]
        summary = {"root": None, "n_images": len(records)}
        return records, list(data), summary, []

    # ------------------------------------------------------------------ predict
    def _proba(self, images: Sequence[ImageInput]) -> tuple[np.ndarray, dict[int, str]]:
        self._check_fitted()
        if isinstance(images, (str, os.PathLike)) or not isinstance(images, Sequence):
            images = [images]  # one image, for convenience
        extraction = self._embed(list(images), None, "Predicting")
        proba = self.head_.predict_proba(extraction.features)
        return proba, extraction.errors

    def predict_proba(self, images: Sequence[ImageInput]) -> np.ndarray:
        """(n_images, n_classes) calibrated probabilities, columns in `classes_` order."""
        proba, errors = self._proba(images)
        if errors:
            i, reason = next(iter(sorted(errors.items())))
            raise ImageLoadError(f"{_source_name(images[i], i)}: {reason}")
        return proba

    def predict(self, images: Sequence[ImageInput]) -> list[str]:
        """Most probable movement per image."""
        return [str(self.classes_[i]) for i in self.predict_proba(images).argmax(axis=1)]

    def predict_top_k(self, images: Sequence[ImageInput], k: int = 3) -> list[Prediction]:
        """Top-k movements per image; an unreadable image gets an error instead of failing the rest."""
        if k < 1:
            raise ArtstyleError("top-k must be at least 1")
        proba, errors = self._proba(images)
        results = []
        for i, row in enumerate(proba):
            name = _source_name(images[i], i)
            if i in errors:
                results.append(Prediction(name, [], errors[i]))
                continue
            order = np.argsort(-row, kind="stable")[:k]
            results.append(Prediction(name, [(str(self.classes_[j]), float(row[j])) for j in order]))
        return results

    # ----------------------------------------------------------------- evaluate
    def training_hashes(self) -> set[str]:
        """Content hashes of the images the head was fitted or tuned on (train + val)."""
        self._check_fitted()
        return {row["sha256"] for row in parse_splits_csv(self.splits_csv_) if row["split"] in ("train", "val")}

    def evaluate(self, data: str | os.PathLike | Dataset, *, include_training: bool = False) -> Evaluation:
        """Score a labelled painting tree.

        Images this model was trained or tuned on are left out (so the training tree
        yields its held-out test split) unless `include_training` is set.
        """
        self._check_fitted()
        dataset = data if isinstance(data, Dataset) else scan_dataset(data, show_progress=self.show_progress)
        labels = [str(c) for c in self.classes_]
        unknown = sorted(set(dataset.labels) - set(labels))
        if unknown:
            folders = ", ".join(f"{label!r} (folder {dataset.folders[label][0]!r})" for label in unknown)
            raise DatasetError(f"{dataset.root}: classes unknown to the model: {folders}; it knows {', '.join(labels)}")
        records = list(dataset.records)
        excluded = 0
        if not include_training:
            seen = self.training_hashes()
            kept = [r for r in records if r.sha256 not in seen]
            excluded = len(records) - len(kept)
            if excluded:
                log.info(
                    "%d image(s) were used to train this model and are left out; scoring %d held-out image(s) "
                    "(--all scores every image)", excluded, len(kept),
                )
            records = kept
        extraction = self._embed([dataset.abspath(r) for r in records], [r.sha256 for r in records], "Evaluating")
        skipped = _skipped(dataset.unreadable, records, extraction.errors)
        ok = np.flatnonzero(extraction.ok)
        index = {label: i for i, label in enumerate(labels)}
        y_true = np.array([index[records[i].label] for i in ok], dtype=np.int64)
        proba = self.head_.predict_proba(extraction.features[ok]) if len(ok) else np.zeros((0, len(labels)))
        metrics = classification_metrics(y_true, proba, labels)
        metrics.update(skipped=skipped, excluded_training_images=excluded)
        paths = [str(dataset.abspath(records[i])) for i in ok]
        return Evaluation(metrics, labels, paths, y_true, proba)

    # -------------------------------------------------------------- persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write the model folder (safetensors + JSON)."""
        self._check_fitted()
        return save_bundle(path, Bundle(self.config_, self.head_, self.splits_csv_, self.metrics_))

    @classmethod
    def load(cls, path: str | os.PathLike, **params) -> "StyleClassifier":
        """Read a model folder; `params` (cache_dir, batch_size, ...) tune how it runs."""
        bundle = load_bundle(path)
        backbone = bundle.config["backbone"]
        clf = cls(backbone["name"], weights=backbone.get("weights"), **params)
        clf.config_ = bundle.config
        clf.head_ = bundle.head
        clf.classes_ = np.array(bundle.labels)
        clf.splits_csv_ = bundle.splits_csv
        clf.metrics_ = bundle.metrics
        return clf

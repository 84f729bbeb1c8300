"""Scoring a fitted classifier on labelled paintings: held-out images apart from the ones it
learnt (those scored apart, as memorised), unknown movements as misses, unreadable files
reported, per size band and per source."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..data.dataset import Dataset, ImageRecord, LabelledImages, Roots, scan_dataset
from ..data.sizes import size_shift
from ..errors import DatasetError
from ..timing import stage
from .metrics import HEADLINE, classification_metrics, metrics_by_group, score_once, size_band

if TYPE_CHECKING:
    from .training import TrainedHead, TrainingTable

log = logging.getLogger("artstyle")


@dataclass
class Evaluation:
    """Scores on a set of labelled images, plus what the report needs to show them."""

    metrics: dict
    labels: list[str]
    paths: list[str]
    y_true: np.ndarray
    proba: np.ndarray


def scores(y: np.ndarray, proba: np.ndarray, labels: list[str], records: Sequence[ImageRecord]) -> dict:
    """Metrics of scored rows (identical images once), also per size band and per source."""
    keys = [r.sha256 for r in records]
    metrics = classification_metrics(y, proba, labels, keys=keys)
    metrics["by_size"] = metrics_by_group(y, proba, labels, [size_band(r.short_side) for r in records], keys)
    if len({r.source for r in records}) > 1:
        metrics["by_source"] = metrics_by_group(y, proba, labels, [r.source for r in records], keys)
    return metrics


def skipped_report(unreadable: list[tuple[str, str]], records: Sequence[ImageRecord], errors: dict[int, str]) -> list[dict]:
    """Files left out (unreadable at scan, undecodable at extraction), each reported on one line."""
    skipped = [{"path": p, "reason": reason} for p, reason in unreadable]
    skipped += [{"path": records[i].path, "reason": reason} for i, reason in sorted(errors.items())]
    for item in skipped:
        log.warning("%s: %s", item["path"], item["reason"])
    if skipped:
        log.warning("%d unreadable file(s) skipped", len(skipped))
    return skipped


def evaluate_classifier(clf, data: Roots | Dataset, *, include_training: bool = False,
                        strict: bool = False) -> Evaluation:
    """`StyleClassifier.evaluate` (see there) of fitted `clf`."""
    with stage("scan and hashing"):
        dataset = data if isinstance(data, Dataset) else scan_dataset(data, show_progress=clf.show_progress)
    known = [str(c) for c in clf.classes_]
    unknown = sorted(set(dataset.labels) - set(known))
    if unknown and strict:
        folders = ", ".join(f"{label!r} (folder {dataset.folders[label][0]!r})" for label in unknown)
        raise DatasetError(f"{dataset.root}: classes unknown to the model: {folders}; it knows {', '.join(known)}")
    records = list(dataset.records)
    seen = clf.training_files()
    trained = [r for r in records if r.sha256 in seen]
    if trained:
        log.info("%d image(s) were used to train this model: %s; scoring %d held-out image(s)", len(trained),
                 "scored apart, as memorised (not a measure of skill)" if include_training
                 else "left out (--all scores them apart, as memorised)", len(records) - len(trained))
    records = [r for r in records if r.sha256 not in seen] + (trained if include_training else [])
    shift = warn_size_shift(clf.config_, records)
    with stage("extraction"):
        extraction = clf.extract([dataset.abspath(r) for r in records], [r.sha256 for r in records], "Evaluating")
    skipped = skipped_report(dataset.unreadable, records, extraction.errors)
    ok = np.flatnonzero(extraction.ok)
    labels = known + unknown  # unknown movements: columns the model never predicts
    index = {label: i for i, label in enumerate(labels)}
    y_true = np.array([index[records[i].label] for i in ok], dtype=np.int64)
    proba = np.zeros((len(ok), len(labels)))
    if len(ok):
        proba[:, : len(known)] = clf.head_.predict_proba(extraction.features[ok])
    memorised = np.array([records[i].sha256 in seen for i in ok], dtype=bool)
    flagged = ~clf.painting_mask(extraction.features[ok]) if len(ok) else np.zeros(0, bool)
    held = np.flatnonzero(~memorised)
    scored = [records[i] for i in ok[held]]
    metrics = scores(y_true[held], proba[held], labels, scored)
    kept, y_held, merged = score_once([r.sha256 for r in scored], y_true[held], proba[held])
    unknown_counts = {label: int(np.sum(y_held == index[label])) for label in unknown}
    if unknown:
        log.warning(
            "movements unknown to the model, scored as misses: %s (--strict refuses such a folder)",
            ", ".join(f"{label} ({n} image{'s' if n != 1 else ''})" for label, n in unknown_counts.items()),
        )
    metrics.update(skipped=skipped, excluded_training_images=len(trained), unknown_to_model=unknown_counts,
                   in_several_movements=merged, size_shift=shift,
                   known_movements=sorted({records[i].label for i in ok[held]} & set(known)),
                   flagged_not_painting=int(flagged[held][kept].sum()))
    if include_training and memorised.any():
        rows = np.flatnonzero(memorised)
        on_training = scores(y_true[rows], proba[rows], labels, [records[i] for i in ok[rows]])
        metrics["on_training_images"] = {k: on_training[k] for k in (*HEADLINE, "in_several_movements")}
    proba, ok = proba[held][kept], ok[held][kept]
    y_true = y_held
    paths = [str(dataset.abspath(records[i])) for i in ok]
    return Evaluation(metrics, labels, paths, y_true, proba)

def warn_size_shift(config: dict, records: Sequence[ImageRecord]) -> float | None:
    """Warn when the images are, in median, far smaller or larger than the training images."""
    trained = (config.get("sizes") or {}).get("short_side", {}).get("median")
    shift = size_shift([r.short_side for r in records], trained)
    if shift:
        median = int(np.median([r.short_side for r in records if r.short_side]))
        log.warning("these images are %gx the size of the training images (median short side %d px against %d): "
                    "the scores may not hold at the training size", shift, median, trained)
    return shift


def fit_metrics(clf, trained: TrainedHead, table: TrainingTable, x: np.ndarray, images: LabelledImages,
                fold_mode: str, skipped: list[dict], test_dir, strict: bool) -> dict:
    """metrics.json: on `test_dir`, else on the test split, else cross-validated on train;
    an image filed under several movements counts once, right if either is named."""
    if test_dir is not None:
        return {"evaluated_on": str(test_dir), **clf.evaluate(test_dir, strict=strict).metrics}  # training copies left out
    if len(table.test):
        rows, proba, evaluated_on = table.test, clf.head_.predict_proba(x[table.test]), "test split"
    elif trained.held_out_proba is not None:
        rows, proba = table.train[trained.held_out], trained.held_out_proba
        evaluated_on = f"{trained.info['cv_folds']}-fold cross-validation ({fold_mode})"
    else:
        return {"evaluated_on": f"{trained.info['cv_folds']}-fold cross-validation ({fold_mode})", "skipped": skipped}
    return {"evaluated_on": evaluated_on, **scores(table.y[rows], proba, table.labels, [images.records[i] for i in rows]),
            "skipped": skipped}

"""Is this a painting at all? A painting-vs-not detector, calibrated on held-out paintings.

The detector is a class-balanced logistic regression on the global view's embedding of
each backbone (the part of every recipe's vector that real non-paintings ship for),
trained on the training paintings against real non-paintings shipped with artstyle
(photos, charts, scanned documents; see `negatives.shipped_negatives`) and generated ones
(slides, charts, tables, screenshots, pages, flat colour, noise, gradients). Its threshold
lets through all but `flag_rate` of held-out paintings (scored by detectors that did not
see them), in every group of paintings the caller names (size bands, sources): a
collection of small web copies beside a few full-size scans must not set a threshold
that flags the scans. A second logistic regression on the non-paintings alone names what an image
looks like instead (`NOT_PAINTING_KINDS`). Both are stored over the full feature vector,
zero outside the columns they read, so a model folder keeps one simple format.

A k-NN distance to the training paintings was measured as a second score and dropped: on
the real paintings it flagged 0-9 % of photos and none of the charts beyond what the
detector already caught, while spending part of the flag budget on real paintings that
simply sit in a sparse corner of the training set (see docs/notes/accuracy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .negatives import NOT_PAINTING_KINDS

DEFAULT_FLAG_RATE = 0.03
DETECTOR_ALPHA = 0.1
MIN_GROUP = 100  # held-out paintings a group needs for its own quantile (3 % of fewer is one or two paintings)


@dataclass
class NonPaintings:
    """What the detector learns "not a painting" from: features in the painting vectors'
    `columns`, the kind of each (index into NOT_PAINTING_KINDS, -1: no name), where each
    comes from (a camera, a chart library, the generator), provenance."""

    features: np.ndarray
    kinds: np.ndarray
    columns: np.ndarray
    info: dict
    sources: np.ndarray | None = None


@dataclass
class PaintingDetector:
    mean: np.ndarray  # (dim,) standardisation
    scale: np.ndarray
    weight: np.ndarray  # (dim,) score > threshold means "not a painting"
    bias: float
    threshold: float
    kind_weight: np.ndarray | None = None  # (kinds, dim): logits of what a non-painting looks like
    kind_bias: np.ndarray | None = None

    def kinds(self, features: np.ndarray) -> list[str | None]:
        """What each row would look like as a non-painting (None for all when unknown);
        callers show it only for rows `is_painting` rejects."""
        if self.kind_weight is None:
            return [None] * len(features)
        logits = np.asarray(features, np.float32) @ self.kind_weight.T + self.kind_bias
        return [NOT_PAINTING_KINDS[i] for i in logits.argmax(axis=1)]

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Log-odds that each row is not a painting (larger: less like a painting)."""
        return (np.asarray(features, np.float32) - self.mean) / self.scale @ self.weight + self.bias

    def fits(self, dim: int) -> bool:
        """Whether it reads feature vectors of `dim` columns (it is fitted on whole vectors)."""
        return self.mean.shape == (dim,)

    def is_painting(self, features: np.ndarray) -> np.ndarray:
        return self.scores(features) <= self.threshold

    def tensors(self) -> dict[str, np.ndarray]:
        kinds = {} if self.kind_weight is None else {"painting_kind_weight": self.kind_weight,
                                                     "painting_kind_bias": self.kind_bias}
        return {"painting_mean": self.mean, "painting_scale": self.scale, "painting_weight": self.weight, **kinds}

    def config(self) -> dict:
        return {"bias": self.bias, "threshold": self.threshold}

    @classmethod
    def from_saved(cls, tensors: dict[str, np.ndarray], config: dict) -> PaintingDetector:
        t = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
        # Bundles from before the k-NN score was dropped call it "detector_threshold".
        threshold = config["threshold"] if "threshold" in config else config["detector_threshold"]
        detector = cls(t["painting_mean"], t["painting_scale"], t["painting_weight"], float(config["bias"]), float(threshold),
                       t.get("painting_kind_weight"), t.get("painting_kind_bias"))
        if not detector.mean.shape == detector.scale.shape == detector.weight.shape:
            raise ValueError("painting detector tensors have inconsistent shapes")
        if detector.kind_weight is not None and (
            detector.kind_weight.shape != (len(NOT_PAINTING_KINDS), len(detector.mean))
            or detector.kind_bias is None or detector.kind_bias.shape != (len(NOT_PAINTING_KINDS),)
        ):
            raise ValueError("painting kind tensors have inconsistent shapes")
        return detector


def source_balanced(n_paintings: int, sources: np.ndarray | None) -> np.ndarray | None:
    """Row weights (mean 1): paintings and non-paintings weigh half each, and inside the
    non-paintings every source the same (a thousand ImageNet samples must not drown fifty
    night shots or satellite views). None without sources (classes balanced)."""
    if sources is None:
        return None
    _, inverse, counts = np.unique(np.asarray(sources, dtype=object), return_inverse=True, return_counts=True)
    negative = 1.0 / counts[inverse] / len(counts)
    weights = np.r_[np.full(n_paintings, 1.0 / n_paintings), negative] / 2
    return weights * len(weights) / weights.sum()


def source_folds(sources: np.ndarray, n_folds: int) -> np.ndarray:
    """A fold per non-painting, whole sources at a time (largest first, each to the fold
    with the fewest so far): a source is held out from the detector that scores it, as a
    user's camera is always one it never saw. Needs two sources or more (one alone would
    leave its folds nothing to learn from)."""
    names, inverse, counts = np.unique(np.asarray(sources, dtype=object), return_inverse=True, return_counts=True)
    load, fold_of = np.zeros(n_folds), np.zeros(len(names), np.int64)
    for i in np.argsort(-counts, kind="stable"):
        fold_of[i] = int(np.argmin(load))
        load[fold_of[i]] += counts[i]
    return fold_of[inverse]


def _fit(paintings: np.ndarray, negatives: np.ndarray, sources: np.ndarray | None = None) -> PaintingDetector:
    """Detector with threshold 0 (even odds); the caller sets the calibrated threshold.
    `sources` (one per negative) weigh every source alike (`source_balanced`)."""
    from .head_fitting import HeadFitter  # torch: fitting only, never when predicting

    x = np.concatenate([paintings, negatives])
    y = np.r_[np.zeros(len(paintings), np.int64), np.ones(len(negatives), np.int64)]
    head = HeadFitter("logreg", x, y, 2, sample_weight=source_balanced(len(paintings), sources)).fit(DETECTOR_ALPHA)
    weight = (head.weight[1] - head.weight[0]).astype(np.float32)
    return PaintingDetector(head.mean, head.scale, weight, float(head.bias[1] - head.bias[0]), 0.0)


def _fit_kinds(negatives: np.ndarray, kinds: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """(weight, bias) of a logistic regression naming the kind of a non-painting, with the
    standardisation folded in; None unless every kind has examples."""
    from .head_fitting import HeadFitter

    named = kinds >= 0
    if len(np.unique(kinds[named])) < len(NOT_PAINTING_KINDS):
        return None
    head = HeadFitter("logreg", negatives[named], kinds[named], len(NOT_PAINTING_KINDS)).fit(DETECTOR_ALPHA)
    weight = head.weight / head.scale
    return weight.astype(np.float32), (head.bias - weight @ head.mean).astype(np.float32)


def _widen(detector: PaintingDetector, columns: np.ndarray, dim: int) -> PaintingDetector:
    """The same detector over full feature vectors: it reads only `columns`."""
    mean, scale, weight = np.zeros(dim, np.float32), np.ones(dim, np.float32), np.zeros(dim, np.float32)
    mean[columns], scale[columns], weight[columns] = detector.mean, detector.scale, detector.weight
    kind_weight = None
    if detector.kind_weight is not None:
        kind_weight = np.zeros((len(detector.kind_weight), dim), np.float32)
        kind_weight[:, columns] = detector.kind_weight
    return PaintingDetector(mean, scale, weight, detector.bias, detector.threshold, kind_weight, detector.kind_bias)


def fit_painting_detector(
    paintings: np.ndarray,
    folds: np.ndarray,
    negatives: np.ndarray,
    *,
    columns: np.ndarray | None = None,
    negative_kinds: np.ndarray | None = None,
    negative_sources: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    flag_rate: float = DEFAULT_FLAG_RATE,
    seed: int = 0,
) -> tuple[PaintingDetector, dict]:
    """Fit on painting features (with CV folds, -1 = never held out) and non-painting features.
    `groups` (one name per painting row): the threshold flags at most `flag_rate` of the
    held-out paintings, and of those of each group with at least MIN_GROUP of them.

    `columns`: the columns of the painting features the detector reads (all by default);
    `negatives` are given in those columns only. `negative_kinds`: index into
    `NOT_PAINTING_KINDS` per negative (-1: no name), to learn `kinds`. `negative_sources`
    (where each negative comes from): every source weighs the same, and each is held out
    whole from the fold detector that scores it, so the held-out flag rate per source is
    what a camera the detector never saw gets.
    """
    dim = paintings.shape[1]
    columns = np.arange(dim) if columns is None else np.asarray(columns)
    paintings, negatives = np.asarray(paintings, np.float32)[:, columns], np.asarray(negatives, np.float32)
    n_folds = max(1, folds.max() + 1)
    if negative_sources is not None:
        negative_sources = np.asarray(negative_sources, dtype=object)
    if negative_sources is not None and len(set(negative_sources.tolist())) > 1:
        neg_folds = source_folds(negative_sources, n_folds)
    else:
        neg_folds = np.random.default_rng(seed).permutation(np.arange(len(negatives)) % n_folds)

    def sources_of(rows: np.ndarray) -> np.ndarray | None:
        return None if negative_sources is None else negative_sources[rows]

    groups = np.zeros(len(paintings), np.int64) if groups is None else np.asarray(groups)
    held, held_groups = [], []
    held_neg = np.full(len(negatives), np.nan)
    for fold in range(folds.max() + 1):
        test = folds == fold
        if test.any():
            fold_detector = _fit(paintings[~test], negatives[neg_folds != fold], sources_of(neg_folds != fold))
            held.append(fold_detector.scores(paintings[test]))
            held_groups.append(groups[test])
            held_neg[neg_folds == fold] = fold_detector.scores(negatives[neg_folds == fold])
    detector = _fit(paintings, negatives, sources_of(np.ones(len(negatives), bool)))
    if held:
        scores, by = np.concatenate(held), np.concatenate(held_groups)
        names, counts = np.unique(by, return_counts=True)
        detector.threshold = max(float(np.quantile(scores[mask], 1 - flag_rate))
                                 for mask in [np.ones(len(by), bool), *(by == g for g in names[counts >= MIN_GROUP])])
        info = {
            "held_out_paintings": int(len(scores)),
            "held_out_paintings_flagged": float(np.mean(scores > detector.threshold)),
            "held_out_paintings_flagged_by_group": {str(g): float(np.mean(scores[by == g] > detector.threshold))
                                                    for g in names},
            "held_out_negatives_flagged": float(np.mean(held_neg[~np.isnan(held_neg)] > detector.threshold)),
        }
        if negative_sources is not None:
            scored = ~np.isnan(held_neg)
            info["held_out_negatives_flagged_by_source"] = {
                str(name): float(np.mean(held_neg[scored & (negative_sources == name)] > detector.threshold))
                for name in np.unique(negative_sources[scored])}
    else:  # no folds: threshold from the training paintings themselves (optimistic)
        detector.threshold = float(np.quantile(detector.scores(paintings), 1 - flag_rate))
        info = {"held_out_paintings": 0}
    if negative_kinds is not None:
        fitted = _fit_kinds(negatives, np.asarray(negative_kinds))
        if fitted is not None:
            detector.kind_weight, detector.kind_bias = fitted
    return _widen(detector, columns, dim), {**info, "flag_rate": flag_rate, "negatives": int(len(negatives))}

"""Is this a painting at all? A painting-vs-not detector, calibrated on held-out paintings.

The detector is a class-balanced logistic regression on the features, trained on the
training paintings against generated non-paintings (slides, charts, tables, screenshots,
pages, flat colour, noise, gradients; see `negatives`). Its threshold lets through all
but `flag_rate` of held-out paintings (scored by detectors that did not see them).

A k-NN distance to the training paintings was measured as a second score and dropped: on
the real paintings it flagged 0-9 % of photos and none of the charts beyond what the
detector already caught, while spending part of the flag budget on real paintings that
simply sit in a sparse corner of the training set (see docs/accuracy.md).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .head import HeadFitter

DEFAULT_FLAG_RATE = 0.04
DETECTOR_ALPHA = 0.1


@dataclass
class PaintingDetector:
    mean: np.ndarray  # (dim,) standardisation
    scale: np.ndarray
    weight: np.ndarray  # (dim,) score > threshold means "not a painting"
    bias: float
    threshold: float

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Log-odds that each row is not a painting (larger: less like a painting)."""
        return (np.asarray(features, np.float32) - self.mean) / self.scale @ self.weight + self.bias

    def is_painting(self, features: np.ndarray) -> np.ndarray:
        return self.scores(features) <= self.threshold

    def tensors(self) -> dict[str, np.ndarray]:
        return {"painting_mean": self.mean, "painting_scale": self.scale, "painting_weight": self.weight}

    def config(self) -> dict:
        return {"bias": self.bias, "threshold": self.threshold}

    @classmethod
    def from_saved(cls, tensors: dict[str, np.ndarray], config: dict) -> "PaintingDetector":
        t = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
        # Bundles from before the k-NN score was dropped call it "detector_threshold".
        threshold = config["threshold"] if "threshold" in config else config["detector_threshold"]
        detector = cls(t["painting_mean"], t["painting_scale"], t["painting_weight"], float(config["bias"]), float(threshold))
        if not detector.mean.shape == detector.scale.shape == detector.weight.shape:
            raise ValueError("painting detector tensors have inconsistent shapes")
        return detector


def _fit(paintings: np.ndarray, negatives: np.ndarray) -> PaintingDetector:
    """Detector with threshold 0 (even odds); the caller sets the calibrated threshold."""
    x = np.concatenate([paintings, negatives])
    y = np.r_[np.zeros(len(paintings), np.int64), np.ones(len(negatives), np.int64)]
    head = HeadFitter("logreg", x, y, 2).fit(DETECTOR_ALPHA)
    weight = (head.weight[1] - head.weight[0]).astype(np.float32)
    return PaintingDetector(head.mean, head.scale, weight, float(head.bias[1] - head.bias[0]), 0.0)


def fit_painting_detector(
    paintings: np.ndarray,
    folds: np.ndarray,
    negatives: np.ndarray,
    *,
    flag_rate: float = DEFAULT_FLAG_RATE,
    seed: int = 0,
) -> tuple[PaintingDetector, dict]:
    """Fit on painting features (with CV folds, -1 = never held out) and negative features."""
    paintings, negatives = np.asarray(paintings, np.float32), np.asarray(negatives, np.float32)
    rng = np.random.default_rng(seed)
    neg_folds = rng.permutation(np.arange(len(negatives)) % max(1, folds.max() + 1))
    held, held_neg = [], []
    for fold in range(folds.max() + 1):
        test = folds == fold
        if test.any():
            fold_detector = _fit(paintings[~test], negatives[neg_folds != fold])
            held.append(fold_detector.scores(paintings[test]))
            held_neg.append(fold_detector.scores(negatives[neg_folds == fold]))
    detector = _fit(paintings, negatives)
    if held:
        scores = np.concatenate(held)
        detector.threshold = float(np.quantile(scores, 1 - flag_rate))
        info = {
            "held_out_paintings": int(len(scores)),
            "held_out_paintings_flagged": float(np.mean(scores > detector.threshold)),
            "held_out_negatives_flagged": float(np.mean(np.concatenate(held_neg) > detector.threshold)),
        }
    else:  # no folds: threshold from the training paintings themselves (optimistic)
        detector.threshold = float(np.quantile(detector.scores(paintings), 1 - flag_rate))
        info = {"held_out_paintings": 0}
    return detector, {**info, "flag_rate": flag_rate, "negatives": int(len(negatives))}

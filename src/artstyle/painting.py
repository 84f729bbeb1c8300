"""Is this a painting at all? Two pieces of evidence, each calibrated on held-out paintings.

1. A linear painting-vs-not detector trained on the training paintings against
   generated non-paintings (slides, charts, tables, screenshots, pages, flat colour,
   noise, gradients; see `negatives`).
2. Distance to the nearest training paintings (k-NN, cosine, in a PCA space): catches
   what is unlike both, e.g. a photograph.
Each threshold lets through all but `flag_rate / 2` of held-out paintings (scored by
models that did not see them), so about `flag_rate` of real paintings get flagged.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .head import HeadFitter, standardizer

DEFAULT_FLAG_RATE = 0.04
DETECTOR_ALPHA = 0.1
NEIGHBOURS = 3
PCA_DIM = 64
MAX_REFERENCES = 4096


@dataclass
class PaintingDetector:
    mean: np.ndarray  # (dim,) standardisation
    scale: np.ndarray
    weight: np.ndarray  # (dim,) detector: > 0 means "not a painting"
    bias: float
    basis: np.ndarray  # (dim, r) PCA of standardised paintings
    references: np.ndarray  # (m, r) unit-length projected training paintings
    detector_threshold: float
    distance_threshold: float

    def scores(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(detector score, k-NN cosine distance) per row; larger means less like a painting."""
        z = (np.asarray(features, np.float32) - self.mean) / self.scale
        detector = z @ self.weight + self.bias
        return detector, _knn_distance(_project(z, self.basis), self.references)

    def is_painting(self, features: np.ndarray) -> np.ndarray:
        detector, distance = self.scores(features)
        return (detector <= self.detector_threshold) & (distance <= self.distance_threshold)

    def tensors(self) -> dict[str, np.ndarray]:
        return {
            "painting_mean": self.mean, "painting_scale": self.scale, "painting_weight": self.weight,
            "painting_basis": self.basis, "painting_references": self.references,
        }

    def config(self) -> dict:
        return {
            "bias": self.bias, "detector_threshold": self.detector_threshold,
            "distance_threshold": self.distance_threshold, "neighbours": NEIGHBOURS,
        }

    @classmethod
    def from_saved(cls, tensors: dict[str, np.ndarray], config: dict) -> "PaintingDetector":
        t = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
        detector = cls(
            t["painting_mean"], t["painting_scale"], t["painting_weight"], float(config["bias"]),
            t["painting_basis"], t["painting_references"],
            float(config["detector_threshold"]), float(config["distance_threshold"]),
        )
        d, r = detector.basis.shape
        if detector.mean.shape != (d,) or detector.weight.shape != (d,) or detector.references.shape[1:] != (r,):
            raise ValueError("painting detector tensors have inconsistent shapes")
        return detector


def _project(z: np.ndarray, basis: np.ndarray) -> np.ndarray:
    p = z @ basis
    return p / np.maximum(np.linalg.norm(p, axis=1, keepdims=True), 1e-12)


def _knn_distance(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    if len(references) == 0:
        return np.full(len(queries), np.inf)
    distance = 1.0 - queries @ references.T
    k = min(NEIGHBOURS, references.shape[0])
    return np.partition(distance, k - 1, axis=1)[:, k - 1]


def _pca_basis(z: np.ndarray) -> np.ndarray:
    centred = z - z.mean(axis=0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    return vt[: min(PCA_DIM, len(vt))].T.astype(np.float32)


def _linear_detector(z_paint: np.ndarray, z_neg: np.ndarray) -> tuple[np.ndarray, float]:
    """Class-balanced logistic regression; returns (w, b) with w.z + b > 0 for non-paintings."""
    x = np.concatenate([z_paint, z_neg])
    y = np.r_[np.zeros(len(z_paint), np.int64), np.ones(len(z_neg), np.int64)]
    head = HeadFitter("logreg", x, y, 2).fit(DETECTOR_ALPHA)
    # The fitter standardises again; fold that into one weight vector on z.
    w = head.weight / head.scale
    b = head.bias - (head.mean / head.scale) @ head.weight.T
    return (w[1] - w[0]).astype(np.float32), float(b[1] - b[0])


def fit_painting_detector(
    paintings: np.ndarray,
    folds: np.ndarray,
    negatives: np.ndarray,
    *,
    flag_rate: float = DEFAULT_FLAG_RATE,
    seed: int = 0,
) -> tuple[PaintingDetector, dict]:
    """Fit on painting features (with CV folds, -1 = never held out) and negative features."""
    mean, scale = standardizer(paintings)
    z_paint = (paintings - mean) / scale
    z_neg = (negatives - mean) / scale
    rng = np.random.default_rng(seed)
    neg_folds = rng.permutation(np.arange(len(z_neg)) % max(1, folds.max() + 1))
    held_det, held_dist, neg_det = [], [], []
    for fold in range(folds.max() + 1):
        test, train = folds == fold, folds != fold
        if not test.any():
            continue
        w, b = _linear_detector(z_paint[train], z_neg[neg_folds != fold])
        held_det.append(z_paint[test] @ w + b)
        neg_det.append(z_neg[neg_folds == fold] @ w + b)
        basis = _pca_basis(z_paint[train])
        held_dist.append(_knn_distance(_project(z_paint[test], basis), _project(z_paint[train], basis)))
    w, b = _linear_detector(z_paint, z_neg)
    keep = rng.permutation(len(z_paint))[:MAX_REFERENCES]
    basis = _pca_basis(z_paint)
    if held_det:
        det_scores, dist_scores = np.concatenate(held_det), np.concatenate(held_dist)
        quantile = 1 - flag_rate / 2
        det_t, dist_t = float(np.quantile(det_scores, quantile)), float(np.quantile(dist_scores, quantile))
        neg_scores = np.concatenate(neg_det)
        info = {
            "held_out_paintings": int(len(det_scores)),
            "held_out_paintings_flagged": float(np.mean((det_scores > det_t) | (dist_scores > dist_t))),
            "held_out_negatives_flagged_by_detector": float(np.mean(neg_scores > det_t)),
        }
    else:  # no folds: thresholds from the training paintings themselves (optimistic)
        det_t = float(np.quantile(z_paint @ w + b, 1 - flag_rate / 2))
        dist_t = float(np.quantile(_knn_distance(_project(z_paint, basis), _project(z_paint, basis)), 1 - flag_rate / 2))
        info = {"held_out_paintings": 0}
    detector = PaintingDetector(mean, scale, w, b, basis, _project(z_paint[keep], basis), det_t, dist_t)
    return detector, {**info, "flag_rate": flag_rate, "negatives": int(len(z_neg))}

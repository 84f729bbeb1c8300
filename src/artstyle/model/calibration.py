"""Turning scores into honest statements: temperature, "uncertain" and "mixed".

All three are chosen on held-out (cross-validated, artist-disjoint) predictions, so
they describe what happens on paintings by artists the model has not seen.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

ABSTAIN_COST = 0.5  # "I am not sure" costs half a wrong answer (Chow's rule)
SECOND_LABEL_COST = 0.25  # showing a second movement is worth it if right >= 1 time in 4


def nll(logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Mean (weighted) negative log-likelihood of labels `y` under softmax(`logits`)."""
    z = np.asarray(logits, np.float64)
    z = z - z.max(axis=1, keepdims=True)
    return float(np.average(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y], weights=weights))


def fit_temperature(logits: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """Temperature minimising the held-out negative log-likelihood (rows weighted by
    `weights`: a big source of small web copies must not set it for a few full-size scans)."""
    from scipy.optimize import minimize_scalar

    logits64 = np.asarray(logits, np.float64)
    # Bounded: a perfectly separable held-out set would otherwise drive T towards 0.
    found = minimize_scalar(lambda log_t: nll(logits64 / np.exp(log_t), y, weights),
                            bounds=(np.log(0.05), np.log(20.0)), method="bounded")
    return float(np.exp(found.x))


MIN_BAND_ROWS = 30  # held-out rows a size band needs for a temperature of its own


@dataclass(frozen=True)
class TileCheck:
    """Which feature rows are pictures too small for tiles. Under a `sized` recipe such a
    picture's tile views are its global view, so its tile-mean block (`width` columns from
    `tile_start`) repeats the global block (from `global_start`). Read from the features
    alone, the same in numpy and in an exported torch graph."""

    global_start: int
    tile_start: int
    width: int

    def small(self, features):
        """Boolean per row (numpy array or torch tensor): the picture had no tiles."""
        whole = features[:, self.global_start:self.global_start + self.width]
        tiles = features[:, self.tile_start:self.tile_start + self.width]
        return abs(tiles - whole).sum(1) <= 1e-4 * abs(whole).sum(1) + 1e-12

    def to_dict(self) -> dict:
        return asdict(self)


def fit_band_temperatures(logits: np.ndarray, y: np.ndarray, small: np.ndarray,
                          weights: np.ndarray | None = None) -> tuple[float, float] | None:
    """(temperature of pictures with tiles, of those without), each fitted on its own
    held-out rows; None when a band has fewer than MIN_BAND_ROWS. Full-size scans and web
    copies are not equally overconfident: one temperature leaves both miscalibrated."""
    small = np.asarray(small, bool)
    if small.sum() < MIN_BAND_ROWS or (~small).sum() < MIN_BAND_ROWS:
        return None
    w = np.ones(len(y)) if weights is None else np.asarray(weights, np.float64)
    return (fit_temperature(logits[~small], y[~small], w[~small]), fit_temperature(logits[small], y[small], w[small]))


def source_weights(sources: np.ndarray) -> np.ndarray:
    """Row weights that give every source the same total (calibration across sources)."""
    _, inverse, counts = np.unique(np.asarray(sources, dtype=object), return_inverse=True, return_counts=True)
    return 1.0 / counts[inverse]


def _best_cut(values: np.ndarray, cost_at) -> float:
    """The cut between sorted distinct `values` (or below all) with the lowest cost; ties keep the lower."""
    distinct = np.unique(values)
    cuts = np.concatenate([[0.0], (distinct[:-1] + distinct[1:]) / 2, [distinct[-1] + 1e-6]]) if len(distinct) else [0.0]
    costs = [cost_at(c) for c in cuts]
    return float(cuts[int(np.argmin(costs))])


@dataclass
class Abstention:
    """`uncertain` when the top probability is below `uncertain_below`; `mixed` when the
    second movement is within `mixed_margin` of the first."""

    uncertain_below: float = 1 - ABSTAIN_COST
    mixed_margin: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Abstention":
        return cls(float(data["uncertain_below"]), float(data["mixed_margin"]))

    @classmethod
    def fit(cls, proba: np.ndarray, y: np.ndarray) -> "Abstention":
        """Thresholds minimising expected cost on held-out calibrated probabilities."""
        proba, y = np.asarray(proba), np.asarray(y)
        if len(y) == 0:
            return cls()
        order = np.argsort(-proba, axis=1)
        top = proba[np.arange(len(y)), order[:, 0]]
        second = proba[np.arange(len(y)), order[:, 1]] if proba.shape[1] > 1 else np.zeros(len(y))
        right1 = order[:, 0] == y
        right2 = (order[:, 1] == y) if proba.shape[1] > 1 else np.zeros(len(y), bool)

        def abstain_cost(cut: float) -> float:
            unsure = top < cut
            return float(np.mean(np.where(unsure, ABSTAIN_COST, ~right1)))

        def mixed_cost(cut: float) -> float:
            mixed = (top - second) < cut
            hit = right1 | (mixed & right2)
            return float(np.mean(~hit + SECOND_LABEL_COST * mixed))

        return cls(_best_cut(top, abstain_cost), _best_cut(top - second, mixed_cost))

    def flags(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uncertain, mixed) boolean arrays for rows of calibrated probabilities."""
        ranked = -np.sort(-proba, axis=1)
        top = ranked[:, 0]
        second = ranked[:, 1] if proba.shape[1] > 1 else np.zeros(len(proba))
        return top < self.uncertain_below, (top - second) < self.mixed_margin

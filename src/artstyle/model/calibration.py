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


MIN_FITTED_ANSWERS = 50  # held-out answers from which the thresholds are fitted, not the defaults
DEFAULT_UNSURE_BELOW = 1 - ABSTAIN_COST  # Chow's rule for calibrated probabilities: answer when p > 1 - cost
DEFAULT_MIXED_MARGIN = 0.10  # "nearly equally likely": the first two within 10 points
MAX_MIXED_MARGIN = 0.15  # a fitted margin never calls 60 % against 40 % "mixed"


@dataclass
class Abstention:
    """`uncertain` when the top probability is below `uncertain_below`; `mixed` when the
    second movement is within `mixed_margin` of the first.

    `basis` says where the thresholds come from: "held-out" (fitted on `fitted_on`
    held-out answers of artists the model never saw) or "default" (too few answers to fit
    them: a cut chosen on a few dozen answers moves by tens of points from one draw to the
    next, so the documented defaults stand; `fitted_on` counts the answers there were).
    """

    uncertain_below: float = DEFAULT_UNSURE_BELOW
    mixed_margin: float = DEFAULT_MIXED_MARGIN
    basis: str = "default"
    fitted_on: int = 0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict, held_out_answers: int | None = None) -> Abstention:
        """Read config.json's block. Folders from before `basis` was recorded fitted their
        thresholds on their `held_out_answers` (config's head.held_out); a margin wider than
        `MAX_MIXED_MARGIN` is narrowed to it, so no old folder calls far-apart movements mixed."""
        fitted_on = int(data.get("fitted_on", held_out_answers or 0))
        basis = data.get("basis", "held-out" if fitted_on else "default")
        return cls(float(data["uncertain_below"]), min(float(data["mixed_margin"]), MAX_MIXED_MARGIN), basis, fitted_on)

    @classmethod
    def from_config(cls, config: dict) -> Abstention:
        """The thresholds of a model folder's config.json."""
        held_out = (config.get("head") or {}).get("held_out") or {}
        return cls.from_dict(config["abstention"], held_out.get("n_images"))

    @property
    def fitted(self) -> bool:
        return self.basis == "held-out"

    def describe(self) -> str:
        """One line for `info`, the card and the report: the thresholds and where they come from."""
        where = (f"fitted on {self.fitted_on:,} held-out answers" if self.fitted else
                 f"defaults: {self.fitted_on} held-out answers are too few to fit them (fitting needs "
                 f"{MIN_FITTED_ANSWERS})" if self.fitted_on else "defaults: no held-out answers to fit them on")
        mixed = (f"mixed within {100 * self.mixed_margin:.0f} points" if self.mixed_margin > 0 else
                 "never mixed (a second movement was right too rarely to be worth showing)")
        return f"unsure below {self.uncertain_below:.0%}; {mixed} ({where})"

    @classmethod
    def fit(cls, proba: np.ndarray, y: np.ndarray) -> Abstention:
        """Thresholds minimising expected cost on held-out calibrated probabilities, when
        there are at least `MIN_FITTED_ANSWERS` of them; else the defaults."""
        proba, y = np.asarray(proba), np.asarray(y)
        if len(y) < MIN_FITTED_ANSWERS:
            return cls(fitted_on=len(y))
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

        margin = min(_best_cut(top - second, mixed_cost), MAX_MIXED_MARGIN)
        return cls(_best_cut(top, abstain_cost), margin, "held-out", len(y))

    def flags(self, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(uncertain, mixed) boolean arrays for rows of calibrated probabilities."""
        ranked = -np.sort(-proba, axis=1)
        top = ranked[:, 0]
        second = ranked[:, 1] if proba.shape[1] > 1 else np.zeros(len(proba))
        return top < self.uncertain_below, (top - second) < self.mixed_margin

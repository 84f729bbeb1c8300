"""Prediction: what the model says about one image (top-k movements and flags, or an error)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..data.families import Families
from .calibration import DEFAULT_UNSURE_BELOW


@dataclass
class Prediction:
    """Top-k movements for one input, most probable first, or the reason it failed.

    uncertain: the top probability is below the model's validated threshold.
    mixed: [first, second] when the second movement is nearly as likely as the first.
    is_painting: False when the image is unlike any painting the model knows.
    not_painting_kind: then, what it looks like instead ("photo", "chart/diagram",
    "document/screenshot"), when the detector can tell.
    in_training: the movement it was filed under when it is one of the model's training
    paintings (the same file, or the same picture re-saved): its answer is memory, not skill.
    family: the most probable movement family (`data.families`), its probability (the sum
    over its movements) and its most probable movement; None when that is a movement of
    no family. family_first: the family is the answer to file (see `family_fields`).
    """

    path: str
    predictions: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    uncertain: bool = False
    mixed: list[str] | None = None
    is_painting: bool = True
    not_painting_kind: str | None = None
    in_training: str | None = None
    family: str | None = None
    family_probability: float | None = None
    family_movement: str | None = None
    family_movement_probability: float | None = None
    family_first: bool = False

    @property
    def summary(self) -> str:
        """What a person should read: 'impressionism', 'impressionism + realism', 'not a painting'."""
        if self.error:
            return "error"
        if not self.is_painting:
            return f"not a painting ({self.not_painting_kind})" if self.not_painting_kind else "not a painting"
        if self.family_first:
            text = f"{self.family_text}; most likely {self.family_movement}, {_percent(self.family_movement_probability or 0.0)}"
            return f"{text} (training painting)" if self.in_training else text
        text = " + ".join(self.mixed) if self.mixed else self.predictions[0][0]
        text = f"{text} (uncertain)" if self.uncertain else text
        return f"{text} (training painting)" if self.in_training else text

    @property
    def family_text(self) -> str:
        """'Renaissance, 85 %' (empty without a family)."""
        return f"{self.family}, {_percent(self.family_probability or 0.0)}" if self.family else ""

    def to_dict(self) -> dict:
        return {
            "path": self.path,
            "predictions": [{"label": label, "probability": p} for label, p in self.predictions],
            "uncertain": self.uncertain if not self.error else None,
            "mixed": self.mixed,
            "is_painting": self.is_painting if not self.error else None,
            "not_painting_kind": self.not_painting_kind,
            "in_training": self.in_training is not None if not self.error else None,
            "training_movement": self.in_training,
            "family": ({"name": self.family, "probability": self.family_probability, "movement": self.family_movement,
                        "movement_probability": self.family_movement_probability}
                       if self.family else None),
            "family_first": self.family_first if not self.error else None,
            "error": self.error,
        }


def _percent(p: float) -> str:
    return f"{100 * p:.0f} %"


@lru_cache(maxsize=8)
def _families(labels: tuple[str, ...]) -> Families:
    return Families(labels)


def family_fields(row: np.ndarray, labels, sure_at: float, movement_sure: bool) -> dict:
    """Prediction's family fields for one row of calibrated probabilities. The family comes
    first when it holds two or more movements, its probability reaches `sure_at` (the model's
    own "unsure below" threshold: Chow's rule applies to a family's probability as to a
    movement's) and Chow's rule at the documented cost (`DEFAULT_UNSURE_BELOW`: a family
    filed is more likely right than not), and the movement answer is not itself sure
    (`movement_sure`: not uncertain, not mixed) or lies outside the family."""
    families = _families(tuple(str(label) for label in labels))
    top = families.top(row)
    if top is None:
        return {}
    family, probability, column = top
    first = int(np.argmax(row))
    first_in_family = families.group[first] == families.group[column]
    lead = (len(families.members[family]) > 1 and probability >= max(sure_at, DEFAULT_UNSURE_BELOW)
            and (not movement_sure or not first_in_family))
    return {"family": family, "family_probability": probability, "family_movement": str(labels[column]),
            "family_movement_probability": float(row[column]), "family_first": bool(lead)}

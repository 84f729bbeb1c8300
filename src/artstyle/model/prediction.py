"""Prediction: what the model says about one image (top-k movements and flags, or an error)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    """

    path: str
    predictions: list[tuple[str, float]] = field(default_factory=list)
    error: str | None = None
    uncertain: bool = False
    mixed: list[str] | None = None
    is_painting: bool = True
    not_painting_kind: str | None = None
    in_training: str | None = None

    @property
    def summary(self) -> str:
        """What a person should read: 'impressionism', 'impressionism + realism', 'not a painting'."""
        if self.error:
            return "error"
        if not self.is_painting:
            return f"not a painting ({self.not_painting_kind})" if self.not_painting_kind else "not a painting"
        text = " + ".join(self.mixed) if self.mixed else self.predictions[0][0]
        text = f"{text} (uncertain)" if self.uncertain else text
        return f"{text} (training painting)" if self.in_training else text

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
            "error": self.error,
        }

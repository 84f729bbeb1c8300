"""Is this a painting at all, asked in words: the detector of zero-shot models.

An image+text backbone embeds prompts for kinds of picture a painting classifier should
answer (paintings, drawings, prints, icons, mosaics, frescoes: ukiyo-e and Byzantine icons
are not photos) and kinds it should not (photos, charts, documents). One softmax over all
kinds, with the backbone's own logit scale and bias, gives the probability that an image is
none of the painting-like kinds; it is flagged above a threshold chosen on pictures
(`calibrate`): the photographs that ship with artstyle and generated charts and documents
against generated brushwork. A model's own training paintings are not needed.

With random weights (the tests) the threshold means nothing; the code path is the one a
real checkpoint takes.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from .head import softmax
from .negatives import NOT_PAINTING_KINDS
from .text_prior import cosines

# What the classifier should answer: kinds of picture that carry a movement.
PAINTING_PROMPTS: dict[str, tuple[str, ...]] = {
    "painting": ("a painting.", "an oil painting on canvas.", "a photo of a painting.", "a watercolour.",
                 "an artwork in a museum."),
    "drawing": ("a drawing.", "a pencil sketch.", "a charcoal drawing.", "an ink drawing on paper."),
    "print": ("a woodblock print.", "an engraving.", "an etching.", "a lithograph."),
    "icon": ("a painted icon.", "a Byzantine icon with gold leaf.", "a religious icon on a wooden panel."),
    "mosaic": ("a mosaic.", "a mosaic of small coloured tiles.", "a Byzantine mosaic."),
    "fresco": ("a fresco.", "a wall painting.", "a fresco on a church ceiling."),
}
# What it should not: keyed by NOT_PAINTING_KINDS, the names predictions give.
NOT_PAINTING_PROMPTS: dict[str, tuple[str, ...]] = {
    "photo": ("a photo.", "a photograph of a scene.", "a snapshot taken with a phone.", "a photo of an object.",
              "a photo of people.", "a photo of a street."),
    "chart/diagram": ("a chart.", "a diagram.", "a plot of data.", "a bar chart with axes.", "a line graph."),
    "document/screenshot": ("a screenshot.", "a scanned document.", "a page of text.", "a receipt.",
                            "a screenshot of a website."),
}
assert tuple(NOT_PAINTING_PROMPTS) == NOT_PAINTING_KINDS
GROUPS = (*PAINTING_PROMPTS.values(), *NOT_PAINTING_PROMPTS.values())  # the order of `TextDetector.weight`'s rows
DEFAULT_THRESHOLD = 0.5  # before calibration: flagged when the non-painting kinds hold most of the probability
CALIBRATION_IMAGES = 40  # generated paintings, and generated charts and documents, beside the shipped photographs


@dataclass
class TextDetector:
    """`PaintingDetector`'s interface from prompt embeddings. Reads the first columns of a
    feature vector (the global view's pooled embedding)."""

    weight: np.ndarray  # (len(GROUPS), d) unit rows: the painting-like kinds, then NOT_PAINTING_KINDS
    logit_scale: float
    logit_bias: float
    threshold: float = DEFAULT_THRESHOLD  # probability of "none of the painting-like kinds" above which it flags
    fitted_on: dict = field(default_factory=dict)  # what chose the threshold, and what it flagged there

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def fits(self, dim: int) -> bool:
        """Whether it reads feature vectors of `dim` columns (its embedding comes first)."""
        return self.dim <= dim

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """(n, kinds) softmax over every kind's prompts, painting-like kinds first."""
        return softmax(cosines(np.asarray(features, np.float32), self.weight) * self.logit_scale + self.logit_bias)

    def scores(self, features: np.ndarray) -> np.ndarray:
        """Probability that each image is none of the painting-like kinds."""
        return self.probabilities(features)[:, len(PAINTING_PROMPTS):].sum(axis=1)

    def is_painting(self, features: np.ndarray) -> np.ndarray:
        return self.scores(features) <= self.threshold

    def kinds(self, features: np.ndarray) -> list[str | None]:
        """The non-painting kind each image is closest to (callers show it for rejected rows)."""
        return [NOT_PAINTING_KINDS[i] for i in self.probabilities(features)[:, len(PAINTING_PROMPTS):].argmax(axis=1)]

    def tensors(self) -> dict[str, np.ndarray]:
        return {"text_detector_weight": self.weight,
                "text_detector_logit_scale": np.array([self.logit_scale], np.float32),
                "text_detector_logit_bias": np.array([self.logit_bias], np.float32)}

    def config(self) -> dict:
        return {"kind": "text prompts", "painting_kinds": list(PAINTING_PROMPTS),
                "prompts": {**PAINTING_PROMPTS, **NOT_PAINTING_PROMPTS}, "threshold": self.threshold,
                "fitted_on": self.fitted_on}

    @classmethod
    def from_saved(cls, tensors: dict[str, np.ndarray], config: dict) -> TextDetector:
        weight = np.asarray(tensors["text_detector_weight"], np.float32)
        saved = [len(p) for p in config.get("prompts", {}).values()]
        if weight.ndim != 2 or len(weight) != len(GROUPS) or len(saved) != len(GROUPS):
            raise ValueError(f"text detector has {len(weight)} kinds, this artstyle reads {len(GROUPS)}")
        return cls(weight, float(tensors["text_detector_logit_scale"][0]), float(tensors["text_detector_logit_bias"][0]),
                   float(config["threshold"]), dict(config.get("fitted_on", {})))


def best_threshold(paintings: np.ndarray, non_paintings: np.ndarray) -> float:
    """The flag threshold on "not a painting" probabilities that best separates the two
    (largest balanced accuracy; among equals, the one nearest the 0.5 of an uncalibrated
    softmax), cut halfway between neighbouring scores so it does not sit on an image."""
    scores = np.unique(np.r_[paintings, non_paintings])
    cuts = np.r_[(scores[:-1] + scores[1:]) / 2, DEFAULT_THRESHOLD] if len(scores) > 1 else np.array([DEFAULT_THRESHOLD])
    passed = (paintings[None, :] <= cuts[:, None]).mean(axis=1)
    caught = (non_paintings[None, :] > cuts[:, None]).mean(axis=1)
    balanced = np.round((passed + caught) / 2, 9)
    best = np.flatnonzero(balanced == balanced.max())
    return float(cuts[best[np.argmin(np.abs(cuts[best] - DEFAULT_THRESHOLD))]])


def calibrate(detector: TextDetector, paintings: np.ndarray, non_paintings: np.ndarray, basis: str) -> TextDetector:
    """`detector` with the threshold chosen on embedded `paintings` and `non_paintings`, and
    the shares it flags of each there (in-sample: what the threshold was chosen on)."""
    p, n = detector.scores(paintings), detector.scores(non_paintings)
    threshold = best_threshold(p, n)
    fitted_on = {"basis": basis, "paintings": int(len(p)), "non_paintings": int(len(n)),
                 "paintings_flagged": float(np.mean(p > threshold)), "non_paintings_flagged": float(np.mean(n > threshold))}
    return TextDetector(detector.weight, detector.logit_scale, detector.logit_bias, threshold, fitted_on)


def brushwork(n: int, seed: int = 0) -> list[Image.Image]:
    """`n` generated paintings: layered strokes of a random palette over a toned ground,
    softened as paint is; same seed, same pictures."""
    rng = np.random.default_rng(seed)
    pictures = []
    for _ in range(n):
        width, height = (int(v) for v in rng.choice([(480, 360), (360, 480), (420, 420), (560, 400)]))
        palette = rng.integers(0, 256, size=(int(rng.integers(3, 7)), 3))
        image = Image.new("RGB", (width, height), tuple(int(c) for c in palette[0]))
        draw = ImageDraw.Draw(image)
        for _ in range(int(rng.integers(150, 400))):
            x, y = rng.uniform(0, width), rng.uniform(0, height)
            angle, length = rng.uniform(0, np.pi), rng.uniform(10, 80)
            colour = np.clip(palette[int(rng.integers(len(palette)))] + rng.normal(0, 18, 3), 0, 255)
            draw.line([(x, y), (x + length * np.cos(angle), y + length * np.sin(angle))],
                      fill=tuple(int(c) for c in colour), width=int(rng.integers(3, 14)))
        pictures.append(image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5)))))
    return pictures

"""Movements named from text (zero-shot): no training painting at all.

An image+text backbone (CLIP, SigLIP) embeds each movement's prompts with its text tower;
the prompts of one movement are averaged (a prompt ensemble, as in the CLIP paper), and
an image gets the movements whose text its own embedding is closest to (`CosineHead`).
Whether it is a painting at all is asked the same way: painting prompts against photo,
chart and document prompts (`TextDetector`). The result is an ordinary fitted
`StyleClassifier`: predict, the JSON, the page and the API treat it like a trained one.

Text embeddings need torch once per backbone, labels and prompts; they are cached (safetensors) under
the user cache, so later runs embed images on ONNX Runtime alone.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.labels import PANDORA_MOVEMENTS
from ..errors import ArtstyleError, require_torch
from ..files import atomic_write_bytes, user_cache_root
from .calibration import Abstention
from .head import CosineHead
from .negatives import NOT_PAINTING_KINDS
from .text_prior import cosines

log = logging.getLogger("artstyle")

# One movement, several phrasings: their mean embedding is steadier than any one. The name
# always stands as a noun ("of impressionism", "the early renaissance movement"), so every
# movement reads grammatically: no "a impressionism painting", whatever a user's label.
TEMPLATES = (
    "a painting in the style of {}.",
    "a painting of the {} movement.",
    "an artwork of {}.",
    "a famous painting of {}.",
    "a detail of a painting of {}.",
    "a reproduction of a painting, {}.",
    "{}, a movement in the history of art.",
)
PAINTING_PROMPTS = ("a painting.", "an oil painting on canvas.", "a photo of a painting.", "a painted icon.",
                    "a watercolour.", "an artwork in a museum.")
NOT_PAINTING_PROMPTS = {
    "photo": ("a photo.", "a photograph of a scene.", "a snapshot taken with a phone.", "a photo of an object.",
              "a photo of people.", "a photo of a street."),
    "chart/diagram": ("a chart.", "a diagram.", "a plot of data.", "a bar chart with axes.", "a line graph."),
    "document/screenshot": ("a screenshot.", "a scanned document.", "a page of text.", "a receipt.",
                            "a screenshot of a website."),
}


def parse_labels(text: str | None) -> list[str]:
    """"ukiyo-e, art nouveau, ..." -> the movements to choose among (the 18 of Pandora18k
    when None): as written, trimmed, each once."""
    if text is None:
        return list(PANDORA_MOVEMENTS)
    labels: list[str] = []
    for part in text.split(","):
        label = " ".join(part.split())
        if label and label.casefold() not in {x.casefold() for x in labels}:
            labels.append(label)
    if len(labels) < 2:
        raise ArtstyleError(f"--labels {text!r}: name at least two movements, separated by commas")
    return labels


def prompts(label: str) -> list[str]:
    return [template.format(label) for template in TEMPLATES]


def ensemble(unit: np.ndarray, groups: list[int]) -> np.ndarray:
    """Unit embeddings of consecutive prompt groups (sizes `groups`) -> one unit row each:
    the mean of its prompts, renormalised."""
    rows, start = [], 0
    for size in groups:
        mean = unit[start:start + size].mean(axis=0)
        rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        start += size
    return np.stack(rows).astype(np.float32)


@dataclass
class TextDetector:
    """"Not a painting" from prompts: an image is a painting unless a non-painting kind's
    prompts are closer to it than the painting prompts. Same interface as
    `PaintingDetector`; reads the first `dim` columns (the global pooled embedding)."""

    painting: np.ndarray  # (d,) unit
    kinds_embedding: np.ndarray  # (len(NOT_PAINTING_KINDS), d) unit

    def _cosines(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        both = cosines(np.asarray(features, np.float32), np.vstack([self.painting, self.kinds_embedding]))
        return both[:, 0], both[:, 1:]

    def scores(self, features: np.ndarray) -> np.ndarray:
        """How much closer the nearest non-painting kind is than painting (> 0: not one)."""
        painting, kinds = self._cosines(features)
        return kinds.max(axis=1) - painting

    def is_painting(self, features: np.ndarray) -> np.ndarray:
        return self.scores(features) <= 0

    def kinds(self, features: np.ndarray) -> list[str | None]:
        return [NOT_PAINTING_KINDS[i] for i in self._cosines(features)[1].argmax(axis=1)]

    def config(self) -> dict:
        return {"kind": "text prompts", "prompts": {"painting": list(PAINTING_PROMPTS), **NOT_PAINTING_PROMPTS}}


def text_embeddings(backbone: str, weights, weights_id: str, texts: list[str]) -> tuple[np.ndarray, float, float]:
    """(unit embeddings of `texts`, logit scale, logit bias) from `backbone`'s text tower,
    cached per weights and texts (a few kB: always, whatever caches features)."""
    from safetensors.numpy import load, save

    key = hashlib.sha256(json.dumps([backbone, weights_id, texts]).encode()).hexdigest()[:24]
    path = user_cache_root()[0] / "zero-shot" / f"{key}.safetensors"
    if path.is_file():
        try:
            t = load(path.read_bytes())
            return t["embeddings"], float(t["logit_scale"][0]), float(t["logit_bias"][0])
        except Exception:  # a damaged entry is computed again
            log.info("%s: damaged zero-shot cache entry, recomputed", path)
    require_torch(f"zero-shot with new labels on {backbone} (its text tower; these prompts are not cached here)")
    from ..features.backbones import get_info
    from ..features.family_open_clip import text_tower

    tower = text_tower(get_info(backbone), Path(weights).expanduser() if weights else None)
    embeddings = tower.encode(texts)
    atomic_write_bytes(path, save({"embeddings": embeddings, "logit_scale": np.array([tower.logit_scale], np.float32),
                                   "logit_bias": np.array([tower.logit_bias], np.float32)}))
    return embeddings, tower.logit_scale, tower.logit_bias


def zero_shot_classifier(backbone: str, labels: list[str] | None = None, weights=None, **params):
    """A fitted `StyleClassifier` naming `labels` (default: the 18 movements) from text
    alone, on an image+text backbone (`artstyle backbones`: "zero-shot"). `params` tune
    how it runs (engine, batch_size, cache_dir, ...)."""
    from ..features.backbones import get_info
    from .classifier import StyleClassifier

    info = get_info(backbone)
    if not info.text:
        with_text = ", ".join(i.name for i in _text_backbones())
        raise ArtstyleError(f"{backbone} has no text tower; zero-shot needs one of {with_text}")
    labels = list(labels or PANDORA_MOVEMENTS)
    clf = StyleClassifier(backbone, features="global", weights=weights, **params)
    (extractor,) = clf.feature_extractors
    texts = [p for label in labels for p in prompts(label)] + list(PAINTING_PROMPTS)
    kinds = [NOT_PAINTING_PROMPTS[k] for k in NOT_PAINTING_KINDS]
    texts += [p for group in kinds for p in group]
    unit, scale, bias = text_embeddings(backbone, weights, extractor.backbone.weights_id, texts)
    groups = [len(TEMPLATES)] * len(labels) + [len(PAINTING_PROMPTS)] + [len(g) for g in kinds]
    rows = ensemble(unit, groups)
    dim = extractor.dim
    clf.classes_ = np.array(labels)
    clf.head_ = CosineHead(mean=np.zeros(dim, np.float32), scale=np.ones(dim, np.float32), temperature=1.0,
                           weight=rows[: len(labels)], logit_scale=np.array([scale], np.float32),
                           logit_bias=np.array([bias], np.float32))
    clf.abstention_ = Abstention()
    clf.painting_detector_ = TextDetector(rows[len(labels)], rows[len(labels) + 1:])
    clf.config_ = {
        "features": {"recipe": "global", "backbones": [{"name": backbone, "weights_id": extractor.backbone.weights_id,
                                                        "dim": dim, "preprocessing": extractor.preprocessing.to_dict()}],
                     "dim": dim},
        "labels": labels,
        "head": {"kind": "zero-shot", "templates": list(TEMPLATES)},
        "temperature": 1.0,
        "abstention": clf.abstention_.to_dict(),
        "painting_detector": clf.painting_detector_.config(),
        "dataset": {"images": 0, "note": "zero-shot: no training paintings"},
    }
    clf.metrics_, clf.splits_csv_, clf.similar_ = {}, "", None
    clf.backbone_weights_, clf.finetuned_, clf.graphs_ = None, None, None
    clf.precision_, clf.int8_graphs_ = "fp32", None
    return clf


def _text_backbones():
    from ..features.backbones import available_backbones

    return [i for i in available_backbones() if i.text]

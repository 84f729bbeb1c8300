"""A zero-shot prior for trained heads: movements with few paintings lean on the text.

A head trained on four fauvist paintings knows little of fauvism; CLIP's text tower
knows the word. With `train --text-prior` (image+text backbones), every answer adds the
zero-shot logits (the cosine of the image with each movement's prompt ensemble, times
the model's logit scale, centred over the movements), each movement's weighted by
`PRIOR_PAINTINGS / (PRIOR_PAINTINGS + n)`, its n training paintings: near 1 for a
handful, fading as its own data grows. The same mix scores the cross-validation folds
(counts of each fold's own training rows), so the head, its temperature and thresholds
are chosen with the prior in place, and `config.json` records the held-out macro-F1
with and without it: how much the text helped, on the user's own paintings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

PRIOR_PAINTINGS = 8.0  # training paintings at which a movement weighs its own data and the text alike


def cosines(features, text):
    """Cosine of each row's image embedding (its first columns: the global view's pooled,
    projected embedding) with each unit row of `text`; numpy arrays or torch tensors (the
    ONNX export traces this same code)."""
    embedding = features[:, : text.shape[1]]
    return (embedding / ((embedding * embedding).sum(1, keepdims=True) ** 0.5 + 1e-12)) @ text.T


@dataclass
class TextPrior:
    """Unit text embeddings of the classes (their prompt ensembles), the model's logit
    scale, and each class's weight `mix`. Reads the first columns of a feature vector
    (the global view's pooled, projected embedding)."""

    weight: np.ndarray  # (n_classes, embedding_dim)
    logit_scale: np.ndarray  # (1,)
    mix: np.ndarray  # (n_classes,)

    def for_counts(self, counts: np.ndarray) -> TextPrior:
        """The prior with each class weighed by its number of training paintings."""
        return replace(self, mix=(PRIOR_PAINTINGS / (PRIOR_PAINTINGS + np.asarray(counts, np.float64))).astype(np.float32))

    def logits(self, features):
        """Weighted, centred zero-shot logits of raw features; numpy arrays or torch tensors
        (the ONNX export traces this same code)."""
        cosine = cosines(features, self.weight) * self.logit_scale
        return (cosine - cosine.mean(1, keepdims=True)) * self.mix

    def tensors(self) -> dict[str, np.ndarray]:
        return {"prior_weight": self.weight, "prior_logit_scale": self.logit_scale, "prior_mix": self.mix}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray]) -> TextPrior | None:
        if "prior_weight" not in tensors:
            return None
        return cls(tensors["prior_weight"], tensors["prior_logit_scale"], tensors["prior_mix"])


def text_prior(backbone, weights, labels: list[str]) -> TextPrior:
    """The prior of `labels` from `backbone`'s text tower (a `Backbone` with text), all
    classes at full weight until `for_counts`."""
    from .prompts import TEMPLATES, ensemble, prompts, text_embeddings

    texts = [p for label in labels for p in prompts(label)]
    unit, scale, _ = text_embeddings(backbone.name, weights, backbone.weights_id, texts)
    rows = ensemble(unit, [len(TEMPLATES)] * len(labels))
    return TextPrior(rows, np.array([scale], np.float32), np.ones(len(labels), np.float32))

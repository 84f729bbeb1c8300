"""The trainable part: small classifiers on frozen features, as predicting uses them.

Three kinds (fitted in `head_fitting`, compared by cross-validation in `training`):
  logreg  multinomial logistic regression
  svm     one-vs-rest linear SVM, squared hinge
  mlp     one hidden layer
All standardise features with the training mean/scale and store plain tensors
(safetensors) plus a temperature for calibration (`saved_heads` rebuilds them). numpy
only: predicting needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from ..errors import ArtstyleError
from .text_prior import TextPrior, cosines

HEAD_KINDS = ("logreg", "svm", "mlp")


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass
class Head:
    """Standardise, score, then softmax(scores / temperature). Subclasses define the scores."""

    mean: np.ndarray  # (dim,)
    scale: np.ndarray  # (dim,)
    temperature: float
    prior: TextPrior | None = None  # zero-shot logits added to the scores (`train --text-prior`)

    kind = "head"

    @property
    def dim(self) -> int:
        return int(self.mean.shape[0])

    @property
    def n_classes(self) -> int:
        raise NotImplementedError

    def checked(self, features: np.ndarray) -> np.ndarray:
        """`features` as float32, refused unless (n, dim)."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ArtstyleError(f"expected features of shape (n, {self.dim}), got {features.shape}")
        return features

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Uncalibrated class scores (with the text prior's, when there is one)."""
        return self.raw_scores(self.checked(features))

    def raw_scores(self, features):
        """`logits` of raw features, numpy arrays or torch tensors (what the export traces)."""
        scores = self.scores((features - self.mean) / self.scale)
        return scores if self.prior is None else scores + self.prior.logits(features)

    def scores(self, z):
        """Class scores of standardised features; written with operators that numpy arrays
        and torch tensors share, so the ONNX export traces this same code."""
        raise NotImplementedError

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, rows sum to 1."""
        return softmax(self.logits(features) / self.temperature)

    def weights(self) -> dict[str, np.ndarray]:
        """The kind's own parameters."""
        raise NotImplementedError

    def map_arrays(self, fn) -> Head:
        """A copy with every array passed through `fn` (the export makes torch tensors)."""
        arrays = {**self.weights(), "mean": self.mean, "scale": self.scale}
        prior = None if self.prior is None else replace(
            self.prior, **{k: fn(getattr(self.prior, k)) for k in ("weight", "logit_scale", "mix")})
        return replace(self, **{k: fn(v) for k, v in arrays.items()}, prior=prior)

    def tensors(self) -> dict[str, np.ndarray]:
        """Everything but the temperature, for safetensors."""
        prior = self.prior.tensors() if self.prior is not None else {}
        return {**self.weights(), "feature_mean": self.mean, "feature_scale": self.scale, **prior}


@dataclass(kw_only=True)
class LinearHead(Head):
    """Linear scores (logistic regression or linear SVM)."""

    weight: np.ndarray  # (n_classes, dim)
    bias: np.ndarray  # (n_classes,)
    kind = "linear"

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    def scores(self, z):
        return z @ self.weight.T + self.bias

    def weights(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}


@dataclass(kw_only=True)
class MLPHead(Head):
    """relu(z W1^T + b1) W2^T + b2 on standardised features z."""

    weight1: np.ndarray  # (hidden, dim)
    bias1: np.ndarray  # (hidden,)
    weight2: np.ndarray  # (n_classes, hidden)
    bias2: np.ndarray  # (n_classes,)
    kind = "mlp"

    @property
    def n_classes(self) -> int:
        return int(self.weight2.shape[0])

    def scores(self, z):
        return (z @ self.weight1.T + self.bias1).clip(min=0) @ self.weight2.T + self.bias2

    def weights(self) -> dict[str, np.ndarray]:
        return {"weight1": self.weight1, "bias1": self.bias1, "weight2": self.weight2, "bias2": self.bias2}


@dataclass(kw_only=True)
class CosineHead(Head):
    """Zero-shot scores: the cosine of an image's embedding (the first columns of its
    vector: the global view's pooled, projected embedding) with each class's unit text
    embedding, times the model's own logit scale, plus its bias (SigLIP's)."""

    weight: np.ndarray  # (n_classes, embedding_dim), unit rows
    logit_scale: np.ndarray  # (1,)
    logit_bias: np.ndarray  # (1,)
    kind = "cosine"

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    def scores(self, z):
        return cosines(z, self.weight) * self.logit_scale + self.logit_bias

    def weights(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "logit_scale": self.logit_scale, "logit_bias": self.logit_bias}

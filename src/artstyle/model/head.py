"""The trainable part: small classifiers on frozen features, as predicting uses them.

Three kinds (fitted in `head_fitting`, compared by cross-validation in `training`):
  logreg  multinomial logistic regression
  svm     one-vs-rest linear SVM, squared hinge
  mlp     one hidden layer
All standardise features with the training mean/scale and store plain tensors
(safetensors) plus a temperature for calibration. Each saved type registers the class
that rebuilds it (`register_head`, as timm's `register_model`), so reading a folder
needs no list of them: a wrapper such as size bands registers from its own module.
numpy only: predicting needs no torch.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, ClassVar, TypeVar

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
    tensor_names: ClassVar[tuple[str, ...]] = ()  # the kind's own tensors, as `weights()` names them

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

    def fits(self) -> bool:
        """Whether the kind's own tensors have shapes that fit `dim` and each other."""
        raise NotImplementedError

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], temperature: float) -> Head:
        """Rebuild a head saved with `tensors()`; shapes are checked."""
        t = {k: np.asarray(v, np.float32) for k, v in tensors.items()}
        own: dict[str, Any] = {name: t[name] for name in cls.tensor_names}
        head = cls(t["feature_mean"], t["feature_scale"], float(temperature), prior=TextPrior.from_tensors(t), **own)
        prior = head.prior
        if not (head.mean.shape == head.scale.shape == (head.dim,) and head.fits()
                and (prior is None or (prior.weight.shape[0] == prior.mix.shape[0] == head.n_classes
                                       and prior.weight.shape[1] <= head.dim))):
            raise ArtstyleError("head tensors have inconsistent shapes")
        return head


HeadClass = TypeVar("HeadClass", bound=type[Head])
_SAVED: dict[str, type[Head]] = {}  # saved type (`Head.kind`) -> the class that rebuilds it


def register_head(cls: HeadClass) -> HeadClass:
    """Class decorator: heads saved as `cls.kind` are rebuilt with `cls.from_tensors`."""
    _SAVED[cls.kind] = cls
    return cls


def head_from_tensors(kind: str, tensors: dict[str, np.ndarray], temperature: float) -> Head:
    """Rebuild a head saved as `kind` with `tensors()`; shapes are checked."""
    if kind not in _SAVED:
        raise ArtstyleError(f"unknown head type {kind!r}")
    try:
        return _SAVED[kind].from_tensors(tensors, temperature)
    except KeyError as exc:
        raise ArtstyleError(f"{kind} head tensors are incomplete (no {exc})") from None


def kind_of(tensors: dict[str, np.ndarray]) -> str:
    """The saved type whose own tensors these hold (a wrapped head stores no type of its own)."""
    kinds = [kind for kind, cls in _SAVED.items() if cls.tensor_names and set(cls.tensor_names) <= set(tensors)]
    if len(kinds) != 1:
        raise ArtstyleError(f"head tensors fit {' and '.join(kinds) or 'no known head type'}")
    return kinds[0]


@register_head
@dataclass(kw_only=True)
class LinearHead(Head):
    """Linear scores (logistic regression or linear SVM)."""

    weight: np.ndarray  # (n_classes, dim)
    bias: np.ndarray  # (n_classes,)
    kind = "linear"
    tensor_names = ("weight", "bias")

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    def scores(self, z):
        return z @ self.weight.T + self.bias

    def weights(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "bias": self.bias}

    def fits(self) -> bool:
        return self.weight.shape[1:] == (self.dim,) and self.bias.shape == (self.weight.shape[0],)


@register_head
@dataclass(kw_only=True)
class MLPHead(Head):
    """relu(z W1^T + b1) W2^T + b2 on standardised features z."""

    weight1: np.ndarray  # (hidden, dim)
    bias1: np.ndarray  # (hidden,)
    weight2: np.ndarray  # (n_classes, hidden)
    bias2: np.ndarray  # (n_classes,)
    kind = "mlp"
    tensor_names = ("weight1", "bias1", "weight2", "bias2")

    @property
    def n_classes(self) -> int:
        return int(self.weight2.shape[0])

    def scores(self, z):
        return (z @ self.weight1.T + self.bias1).clip(min=0) @ self.weight2.T + self.bias2

    def weights(self) -> dict[str, np.ndarray]:
        return {"weight1": self.weight1, "bias1": self.bias1, "weight2": self.weight2, "bias2": self.bias2}

    def fits(self) -> bool:
        hidden = self.weight1.shape[0]
        return (self.weight1.shape == (hidden, self.dim) and self.bias1.shape == (hidden,)
                and self.weight2.shape[1:] == (hidden,) and self.bias2.shape == (self.weight2.shape[0],))


@register_head
@dataclass(kw_only=True)
class CosineHead(Head):
    """Zero-shot scores: the cosine of an image's embedding (the first columns of its
    vector: the global view's pooled, projected embedding) with each class's unit text
    embedding, times the model's own logit scale, plus its bias (SigLIP's)."""

    weight: np.ndarray  # (n_classes, embedding_dim), unit rows
    logit_scale: np.ndarray  # (1,)
    logit_bias: np.ndarray  # (1,)
    kind = "cosine"
    tensor_names = ("weight", "logit_scale", "logit_bias")

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    def scores(self, z):
        return cosines(z, self.weight) * self.logit_scale + self.logit_bias

    def weights(self) -> dict[str, np.ndarray]:
        return {"weight": self.weight, "logit_scale": self.logit_scale, "logit_bias": self.logit_bias}

    def fits(self) -> bool:
        return (self.weight.ndim == 2 and self.weight.shape[1] <= self.dim
                and self.logit_scale.shape == self.logit_bias.shape == (1,))

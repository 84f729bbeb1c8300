"""The trainable part: a linear softmax classifier on frozen embeddings.

Multinomial logistic regression, fitted full-batch with L-BFGS in torch (seconds on
18k embeddings), with class weights against imbalance. The L2 strength is chosen on
the validation split by macro-F1, then a temperature is fitted on the same split so
that predicted probabilities match observed accuracy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .errors import ArtstyleError
from .metrics import macro_f1

log = logging.getLogger("artstyle")

DEFAULT_ALPHAS = (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4)
FALLBACK_ALPHA = 1e-2  # used when there is no validation split to choose with


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


@dataclass
class LinearHead:
    """softmax(((x - mean) / scale) @ weight.T + bias) / temperature)."""

    weight: np.ndarray  # (n_classes, dim)
    bias: np.ndarray  # (n_classes,)
    mean: np.ndarray  # (dim,)
    scale: np.ndarray  # (dim,)
    temperature: float = 1.0

    @property
    def n_classes(self) -> int:
        return int(self.weight.shape[0])

    @property
    def dim(self) -> int:
        return int(self.weight.shape[1])

    def logits(self, features: np.ndarray) -> np.ndarray:
        """Uncalibrated class scores."""
        features = np.asarray(features, dtype=np.float32)
        if features.ndim != 2 or features.shape[1] != self.dim:
            raise ArtstyleError(f"expected features of shape (n, {self.dim}), got {features.shape}")
        return ((features - self.mean) / self.scale) @ self.weight.T + self.bias

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Calibrated class probabilities, rows sum to 1."""
        return softmax(self.logits(features) / self.temperature)

    def tensors(self) -> dict[str, np.ndarray]:
        """Everything but the temperature, for safetensors."""
        return {"weight": self.weight, "bias": self.bias, "feature_mean": self.mean, "feature_scale": self.scale}

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], temperature: float) -> "LinearHead":
        head = cls(
            np.asarray(tensors["weight"], np.float32),
            np.asarray(tensors["bias"], np.float32),
            np.asarray(tensors["feature_mean"], np.float32),
            np.asarray(tensors["feature_scale"], np.float32),
            float(temperature),
        )
        k, d = head.weight.shape
        if head.bias.shape != (k,) or head.mean.shape != (d,) or head.scale.shape != (d,):
            raise ArtstyleError("head tensors have inconsistent shapes")
        return head


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """'Balanced' weights n / (k * n_c): every class counts as much in the loss."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def _fit_logreg(
    x: torch.Tensor, y: torch.Tensor, weights: torch.Tensor, alpha: float, init: tuple | None
) -> tuple[torch.Tensor, torch.Tensor]:
    n_classes = weights.shape[0]
    if init is None:
        w = torch.zeros(n_classes, x.shape[1])
        b = torch.zeros(n_classes)
    else:
        w, b = (t.clone() for t in init)
    w.requires_grad_(True)
    b.requires_grad_(True)
    optimizer = torch.optim.LBFGS(
        [w, b], lr=1.0, max_iter=500, tolerance_grad=1e-6, tolerance_change=1e-10,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(x @ w.T + b, y, weight=weights) + 0.5 * alpha * (w * w).sum()
        loss.backward()
        return loss

    optimizer.step(closure)
    return w.detach(), b.detach()


def fit_temperature(logits: np.ndarray, y: np.ndarray) -> float:
    """Temperature minimising the validation negative log-likelihood."""
    from scipy.optimize import minimize_scalar

    logits64 = np.asarray(logits, np.float64)

    def nll(log_t: float) -> float:
        z = logits64 / np.exp(log_t)
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(y)), y]))

    # Bounded: a perfectly separable validation set would otherwise drive T towards 0.
    found = minimize_scalar(nll, bounds=(np.log(0.1), np.log(10.0)), method="bounded")
    return float(np.exp(found.x))


def fit_linear_head(
    x_train: np.ndarray,
    y_train: np.ndarray,
    n_classes: int,
    x_val: np.ndarray | None = None,
    y_val: np.ndarray | None = None,
    *,
    alphas: tuple[float, ...] = DEFAULT_ALPHAS,
) -> tuple[LinearHead, dict]:
    """Fit the head; returns it with a JSON-ready note of how it was chosen."""
    y_train = np.asarray(y_train, dtype=np.int64)
    missing = sorted(set(range(n_classes)) - set(y_train.tolist()))
    if missing:
        raise ArtstyleError(f"classes {missing} have no training images")
    mean = x_train.mean(axis=0).astype(np.float32)
    scale = x_train.std(axis=0).astype(np.float32)
    scale[scale < 1e-6] = 1.0
    x = torch.from_numpy(((x_train - mean) / scale).astype(np.float32))
    y = torch.from_numpy(y_train)
    weights = torch.from_numpy(class_weights(y_train, n_classes))

    has_val = x_val is not None and y_val is not None and len(y_val) > 0
    candidates = alphas if has_val else (FALLBACK_ALPHA,)
    best: tuple | None = None
    scores: dict[str, float] = {}
    init = None
    for alpha in candidates:  # strong -> weak regularisation, warm-started
        init = _fit_logreg(x, y, weights, alpha, init)
        head = LinearHead(init[0].numpy(), init[1].numpy(), mean, scale)
        if not has_val:
            best = (0.0, 0.0, alpha, head)
            break
        logits = head.logits(x_val)
        f1 = macro_f1(np.asarray(y_val), logits.argmax(axis=1), n_classes)
        nll = float(np.mean(-np.log(softmax(logits)[np.arange(len(y_val)), y_val] + 1e-12)))
        scores[f"{alpha:g}"] = round(f1, 4)
        if best is None or (f1, -nll) > (best[0], best[1]):
            best = (f1, -nll, alpha, head)
    assert best is not None
    _, _, alpha, head = best
    if has_val:
        head.temperature = fit_temperature(head.logits(x_val), np.asarray(y_val))
    else:
        log.warning("no validation images: default regularisation and uncalibrated probabilities")
    info = {"type": "linear", "alpha": alpha, "val_macro_f1_by_alpha": scores, "temperature": head.temperature}
    return head, info

"""How each head kind is fitted (torch): imported by training, never by predicting.

  logreg  multinomial logistic regression (full-batch L-BFGS)
  svm     one-vs-rest linear SVM, squared hinge (L-BFGS)
  mlp     one hidden layer with dropout (AdamW)
Rows are weighted: by default every class counts as much in the loss ("balanced"); a
caller may pass its own per-row weights (see `balancing`: movements, sources and artists
counted equally). A class with no training rows (a cross-validation
fold that holds out all of a movement) gets no probability: its score is `ABSENT_SCORE`.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import ArtstyleError
from .head import HEAD_KINDS, Head, LinearHead, MLPHead

ALPHAS = {  # L2 strength (weight decay for the MLP), strong -> weak for warm starts
    "logreg": (1.0, 3e-1, 1e-1, 3e-2, 1e-2, 3e-3, 1e-3),
    "svm": (1.0, 1e-1, 1e-2, 1e-3),
    "mlp": (1e-1, 1e-2),
}
MLP_HIDDEN = 256
MLP_STEPS = 150
# L-BFGS iterations per alpha, warm-started along the path: 40 scored as 150 did on the
# merged paintings + wikiart features (docs/performance.md) in a quarter of the time.
LBFGS_ITERATIONS = 40
ABSENT_SCORE = -1e4  # score of a class the fit never saw: softmax gives it 0 at any temperature


def class_weights(y: np.ndarray, n_classes: int) -> np.ndarray:
    """'Balanced' weights n / (k * n_c): every class counts as much in the loss."""
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    present = counts > 0
    weights = np.zeros(n_classes)
    weights[present] = counts.sum() / (present.sum() * counts[present])
    return weights.astype(np.float32)


def standardizer(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Training mean and scale (constant features keep scale 1)."""
    mean = x.mean(axis=0).astype(np.float32)
    scale = x.std(axis=0).astype(np.float32)
    scale[scale < 1e-6] = 1.0
    return mean, scale


def _lbfgs(params: list[torch.Tensor], loss_fn) -> None:
    optimizer = torch.optim.LBFGS(
        params, lr=1.0, max_iter=LBFGS_ITERATIONS, tolerance_grad=1e-6, tolerance_change=1e-10,
        history_size=20, line_search_fn="strong_wolfe",
    )

    def closure() -> torch.Tensor:
        optimizer.zero_grad()
        loss = loss_fn()
        loss.backward()
        return loss

    optimizer.step(closure)


class HeadFitter:
    """Fits one head kind on standardised data, warm-starting along the alpha path.

    Call `fit(alpha)` with alphas from strong to weak regularisation; each returns a
    head (temperature 1) built on the given mean/scale.
    """

    def __init__(self, kind: str, x: np.ndarray, y: np.ndarray, n_classes: int, seed: int = 0,
                 sample_weight: np.ndarray | None = None):
        if kind not in HEAD_KINDS:
            raise ArtstyleError(f"unknown head {kind!r}; choose one of {', '.join(HEAD_KINDS)}")
        y = np.asarray(y, dtype=np.int64)
        self.present = np.unique(y)  # classes with training rows, in order
        if len(self.present) < 2 or self.present[0] < 0 or self.present[-1] >= n_classes:
            raise ArtstyleError(f"a head needs training images of at least two of its {n_classes} classes")
        self.kind, self.n_classes, self.seed = kind, n_classes, seed
        self.mean, self.scale = standardizer(x)
        self.x = torch.from_numpy(((x - self.mean) / self.scale).astype(np.float32))
        fitted = np.searchsorted(self.present, y)  # labels among the present classes
        self.y = torch.from_numpy(fitted)
        if sample_weight is None:
            sample_weight = class_weights(fitted, len(self.present))[fitted]
        sample_weight = np.asarray(sample_weight, np.float64)
        if sample_weight.shape != y.shape or not np.all(sample_weight >= 0) or sample_weight.sum() <= 0:
            raise ArtstyleError("sample weights need one non-negative value per training row, not all zero")
        # mean 1: the alphas keep their meaning whatever the weighting
        self.sample_weight = torch.from_numpy((sample_weight * len(y) / sample_weight.sum()).astype(np.float32))
        self._state: tuple[torch.Tensor, torch.Tensor] | None = None

    def _scatter(self, weight: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The last layer over all `n_classes`: absent classes score `ABSENT_SCORE`."""
        full_weight = np.zeros((self.n_classes, weight.shape[1]), np.float32)
        full_bias = np.full(self.n_classes, ABSENT_SCORE, np.float32)
        full_weight[self.present], full_bias[self.present] = weight, bias
        return full_weight, full_bias

    def fit_path(self, alpha: float) -> Head:
        """The head at `alpha` reached as cross-validation reaches it: through every stronger
        alpha of the kind's path (warm starts), so the refit matches its calibration."""
        if self.kind == "mlp":
            return self.fit(alpha)
        for step in ALPHAS[self.kind]:
            head = self.fit(step)
            if step <= alpha:
                return head
        return head

    def fit(self, alpha: float) -> Head:
        if self.kind == "mlp":
            return self._fit_mlp(alpha)
        n = len(self.present)
        w, b = self._state or (torch.zeros(n, self.x.shape[1]), torch.zeros(n))
        w, b = w.clone().requires_grad_(True), b.clone().requires_grad_(True)
        if self.kind == "logreg":
            def loss() -> torch.Tensor:
                ce = F.cross_entropy(self.x @ w.T + b, self.y, reduction="none")
                return (self.sample_weight * ce).mean() + 0.5 * alpha * (w * w).sum()
        else:
            targets = F.one_hot(self.y, n).float() * 2 - 1
            def loss() -> torch.Tensor:
                margins = torch.clamp(1 - targets * (self.x @ w.T + b), min=0)
                return (self.sample_weight[:, None] * margins**2).sum(dim=1).mean() + 0.5 * alpha * (w * w).sum()
        _lbfgs([w, b], loss)
        self._state = (w.detach(), b.detach())
        weight, bias = self._scatter(w.detach().numpy(), b.detach().numpy())
        return LinearHead(self.mean, self.scale, 1.0, weight=weight, bias=bias)

    def _fit_mlp(self, weight_decay: float) -> Head:
        generator = torch.Generator().manual_seed(self.seed)
        torch.manual_seed(self.seed)
        net = torch.nn.Sequential(
            torch.nn.Dropout(0.2),
            torch.nn.Linear(self.x.shape[1], MLP_HIDDEN),
            torch.nn.ReLU(),
            torch.nn.Dropout(0.5),
            torch.nn.Linear(MLP_HIDDEN, len(self.present)),
        )
        optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=weight_decay)
        batch = min(len(self.y), 128)
        net.train()
        for _ in range(MLP_STEPS):
            idx = torch.randperm(len(self.y), generator=generator)[:batch]
            optimizer.zero_grad()
            ce = F.cross_entropy(net(self.x[idx]), self.y[idx], reduction="none")
            (self.sample_weight[idx] * ce).mean().backward()
            optimizer.step()
        first, second = net[1], net[4]
        weight2, bias2 = self._scatter(second.weight.detach().numpy(), second.bias.detach().numpy())
        return MLPHead(
            self.mean, self.scale, 1.0,
            weight1=first.weight.detach().numpy().copy(), bias1=first.bias.detach().numpy().copy(),
            weight2=weight2, bias2=bias2,
        )

"""How each head kind is fitted, in numpy: imported by training, never by predicting, and
free of torch.

  logreg  multinomial logistic regression   (L-BFGS on the loss and gradient written
  svm     one-vs-rest linear SVM, squared      here, warm-started along the path)
          hinge
  mlp     one hidden layer with dropout (AdamW)
`benchmarks/head_solvers.py` measures them against the torch fitters they replaced, and
the logistic regression against scikit-learn's: as accurate, and faster on 2 cores (scipy's
L-BFGS-B, which scikit-learn runs, spends most of a fit on bookkeeping for bounds).
liblinear's SVM would also shrink the intercept; scikit-learn's MLP has no dropout.
Rows are weighted: by default every class counts as much in the loss ("balanced"); a
caller may pass its own per-row weights (see `balancing`: movements, sources and artists
counted equally). A class with no training rows (a cross-validation
fold that holds out all of a movement) gets no probability: its score is `ABSENT_SCORE`.
"""

from __future__ import annotations

import numpy as np

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
# merged paintings + wikiart features (docs/notes/performance.md) in a quarter of the time.
LBFGS_ITERATIONS = 40
# BLAS threads of the linear fits: their products are small, and on 2 cores a second thread
# gained nothing (scipy's solver lost 1.6-7x with it; docs/notes/performance.md); the MLP's
# larger products keep every thread
FIT_THREADS = 1
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


class HeadFitter:
    """Fits one head kind on standardised data, warm-starting along the alpha path.

    Call `fit(alpha)` with alphas from strong to weak regularisation; each returns a
    head (temperature 1) built on the given mean/scale. Every kind minimises the mean
    of the weighted per-row losses plus `alpha / 2 * |W|^2` (the bias is not shrunk).
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
        self.x = ((x - self.mean) / self.scale).astype(np.float32)
        self.y = np.searchsorted(self.present, y)  # labels among the present classes
        if sample_weight is None:
            sample_weight = class_weights(self.y, len(self.present))[self.y]
        sample_weight = np.asarray(sample_weight, np.float64)
        if sample_weight.shape != y.shape or not np.all(sample_weight >= 0) or sample_weight.sum() <= 0:
            raise ArtstyleError("sample weights need one non-negative value per training row, not all zero")
        # mean 1: the alphas keep their meaning whatever the weighting
        self.sample_weight = (sample_weight * len(y) / sample_weight.sum()).astype(np.float32)
        self._state: tuple[np.ndarray, np.ndarray] | None = None

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
        from threadpoolctl import threadpool_limits

        with threadpool_limits(FIT_THREADS, user_api="blas"):
            weight, bias = self._fit_logreg(alpha) if self.kind == "logreg" else self._fit_svm(alpha)
        self._state = (weight, bias)
        weight, bias = self._scatter(weight, bias)
        return LinearHead(self.mean, self.scale, 1.0, weight=weight, bias=bias)

    def _fit_logreg(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """Multinomial logistic regression (softmax cross-entropy)."""
        rows = self.sample_weight / len(self.y)
        picked = np.arange(len(self.y)), self.y

        def data_loss(scores: np.ndarray) -> tuple[float, np.ndarray]:
            scores = scores - scores.max(axis=1, keepdims=True)
            exp = np.exp(scores)
            total = exp.sum(axis=1)
            value = float((rows * (np.log(total) - scores[picked])).sum())
            d_scores = exp * (rows / total)[:, None]
            d_scores[picked] -= rows
            return value, d_scores

        return self._lbfgs(alpha, data_loss)

    def _fit_svm(self, alpha: float) -> tuple[np.ndarray, np.ndarray]:
        """One-vs-rest squared hinge, every class at once."""
        rows = (self.sample_weight / len(self.y))[:, None]
        targets = np.where(np.arange(len(self.present))[None, :] == self.y[:, None], 1, -1).astype(np.float32)

        def data_loss(scores: np.ndarray) -> tuple[float, np.ndarray]:
            margins = np.maximum(1 - targets * scores, 0)
            return float((rows * margins**2).sum()), -2 * rows * margins * targets

        return self._lbfgs(alpha, data_loss)

    def _lbfgs(self, alpha: float, data_loss) -> tuple[np.ndarray, np.ndarray]:
        """Minimise data_loss(scores) + alpha / 2 |W|^2 over the linear layer by L-BFGS, from
        the previous alpha's solution. `data_loss` returns the loss and its gradient by
        score; the products stay in float32 (single-precision BLAS)."""
        k, dim = len(self.present), self.x.shape[1]

        def loss(params: np.ndarray) -> tuple[float, np.ndarray]:
            weight, bias = params[: k * dim].reshape(k, dim), params[k * dim:]
            value, d_scores = data_loss(self.x @ weight.T + bias)
            d_weight = d_scores.T @ self.x + alpha * weight
            value += 0.5 * alpha * float(np.vdot(weight, weight))
            return value, np.concatenate([d_weight.ravel(), d_scores.sum(axis=0)])

        start = np.zeros(k * dim + k) if self._state is None else np.r_[self._state[0].ravel(), self._state[1]]
        params = lbfgs(loss, start.astype(np.float32), LBFGS_ITERATIONS)
        return params[: k * dim].reshape(k, dim).copy(), params[k * dim:].copy()

    def _fit_mlp(self, weight_decay: float) -> Head:
        """Dropout 0.2, 256 ReLU units, dropout 0.5, softmax; AdamW on minibatches of 128,
        initialised as torch's `nn.Linear` is (uniform in +-1/sqrt(fan_in))."""
        rng = np.random.default_rng(self.seed)
        dim, k = self.x.shape[1], len(self.present)
        params = [(rng.uniform(-1, 1, shape) / np.sqrt(fan_in)).astype(np.float32)
                  for shape, fan_in in (((MLP_HIDDEN, dim), dim), ((MLP_HIDDEN,), dim),
                                        ((k, MLP_HIDDEN), MLP_HIDDEN), ((k,), MLP_HIDDEN))]
        optimizer = AdamW(params, lr=1e-3, weight_decay=weight_decay)
        batch = min(len(self.y), 128)
        rows = np.arange(batch)
        for _ in range(MLP_STEPS):
            idx = rng.permutation(len(self.y))[:batch]
            w1, b1, w2, b2 = params
            inputs = self.x[idx] * _dropout_mask(rng, (batch, dim), 0.2)
            hidden = np.maximum(inputs @ w1.T + b1, 0)
            keep = _dropout_mask(rng, hidden.shape, 0.5) * (hidden > 0)  # where gradients flow back
            dropped = hidden * keep
            logits = dropped @ w2.T + b2
            proba = np.exp(logits - logits.max(axis=1, keepdims=True))
            proba /= proba.sum(axis=1, keepdims=True)
            proba[rows, self.y[idx]] -= 1
            d_logits = proba * (self.sample_weight[idx] / batch)[:, None]  # d mean weighted CE / d logits
            d_hidden = (d_logits @ w2) * keep
            optimizer.step([d_hidden.T @ inputs, d_hidden.sum(axis=0), d_logits.T @ dropped, d_logits.sum(axis=0)])
        weight2, bias2 = self._scatter(params[2], params[3])
        return MLPHead(self.mean, self.scale, 1.0, weight1=params[0].copy(), bias1=params[1].copy(),
                       weight2=weight2, bias2=bias2)


def lbfgs(fun, x: np.ndarray, iterations: int, history: int = 20, tolerance: float = 1e-6) -> np.ndarray:
    """Minimise a smooth convex `fun` (x -> (value, gradient)) from `x`: L-BFGS with
    `history` pairs and a backtracking (Armijo) line search that tries the full step first,
    the first step scaled as torch's L-BFGS scales it. scipy's L-BFGS-B spent two thirds
    of a head's fit in its own bookkeeping (bounds this problem does not have)."""
    value, grad = fun(x)
    pairs: list[tuple[np.ndarray, np.ndarray, float]] = []
    for _ in range(iterations):
        if np.abs(grad).max() <= tolerance:
            break
        direction = -grad
        coefficients = []
        for s, y, rho in reversed(pairs):  # two-loop recursion
            a = rho * float(np.vdot(s, direction))
            direction = direction - a * y
            coefficients.append(a)
        if pairs:
            s, y, _ = pairs[-1]
            direction = direction * (float(np.vdot(s, y)) / float(np.vdot(y, y)))
        else:
            direction = direction * min(1.0, 1.0 / float(np.abs(grad).sum()))
        for (s, y, rho), a in zip(pairs, reversed(coefficients)):
            direction = direction + s * (a - rho * float(np.vdot(y, direction)))
        slope = float(np.vdot(grad, direction))
        if slope >= 0:  # not a descent direction: start the memory afresh
            pairs.clear()
            continue
        step = 1.0
        for _ in range(20):
            new_value, new_grad = fun(x + step * direction)
            if new_value <= value + 1e-4 * step * slope:
                break
            step *= 0.5
        else:
            break
        s, y = step * direction, new_grad - grad
        curvature = float(np.vdot(s, y))
        if curvature > 1e-10:
            pairs = [*pairs[-(history - 1):], (s, y, 1.0 / curvature)]
        x, value, grad = x + s, new_value, new_grad
    return x


def _dropout_mask(rng: np.random.Generator, shape: tuple[int, ...], p: float) -> np.ndarray:
    """Inverted dropout: 0 with probability `p`, else 1 / (1 - p) (float32)."""
    return (rng.random(shape, dtype=np.float32) >= p) * np.float32(1 / (1 - p))


class AdamW:
    """Adam with decoupled weight decay (torch's defaults: betas 0.9/0.999, eps 1e-8),
    updating numpy arrays in place."""

    def __init__(self, params: list[np.ndarray], lr: float, weight_decay: float):
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.moments = [(np.zeros_like(p), np.zeros_like(p)) for p in params]
        self.steps = 0

    def step(self, grads: list[np.ndarray]) -> None:
        self.steps += 1
        correction1, correction2 = 1 - 0.9**self.steps, 1 - 0.999**self.steps
        for param, grad, (first, second) in zip(self.params, grads, self.moments):
            param *= 1 - self.lr * self.weight_decay
            first *= 0.9
            first += 0.1 * grad
            second *= 0.999
            second += 0.001 * np.square(grad)
            denominator = np.sqrt(second / correction2)
            denominator += 1e-8
            param -= (self.lr / correction1) * first / denominator

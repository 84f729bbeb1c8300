"""The heads' numpy solvers reach the minimum of the objective they claim, and the MLP's
steps are AdamW's (torch's own optimiser checks it where torch is installed)."""

import numpy as np
import pytest

from artstyle.model import head_fitting
from artstyle.model.head_fitting import AdamW, HeadFitter, lbfgs


def test_lbfgs_finds_the_minimum_of_a_convex_quadratic():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 40))
    hessian, target = a @ a.T + 0.5 * np.eye(40), rng.normal(size=40)

    def fun(x):
        return 0.5 * x @ hessian @ x - target @ x, hessian @ x - target

    found = lbfgs(fun, np.zeros(40), iterations=500, tolerance=1e-10)
    np.testing.assert_allclose(found, np.linalg.solve(hessian, target), atol=1e-6)


@pytest.mark.parametrize("kind", ["logreg", "svm"])
def test_a_linear_head_run_to_convergence_is_scipys_minimum_of_the_same_objective(kind, monkeypatch):
    """Weighted mean loss + alpha / 2 |W|^2, the bias unshrunk: scipy's L-BFGS-B on the same
    loss written independently lands on the same weights."""
    from scipy.optimize import minimize
    from scipy.special import log_softmax

    rng = np.random.default_rng(1)
    n, dim, k, alpha = 120, 6, 3, 0.05
    y = rng.integers(0, k, n)
    x = (rng.normal(size=(n, dim)) + np.eye(k, dim)[y] * 1.5).astype(np.float32)
    weight = rng.uniform(0.5, 2.0, n)
    monkeypatch.setattr(head_fitting, "LBFGS_ITERATIONS", 3000)
    fitter = HeadFitter(kind, x, y, k, sample_weight=weight)
    head = fitter.fit(alpha)
    z, w = fitter.x.astype(np.float64), fitter.sample_weight.astype(np.float64)
    sign = np.where(np.arange(k) == y[:, None], 1.0, -1.0)

    def objective(params):
        coef, bias = params[: k * dim].reshape(k, dim), params[k * dim:]
        scores = z @ coef.T + bias
        if kind == "logreg":
            loss = -log_softmax(scores, axis=1)[np.arange(n), y]
        else:
            loss = (np.maximum(1 - sign * scores, 0) ** 2).sum(axis=1)
        return float((w * loss).mean() + 0.5 * alpha * (coef**2).sum())

    reference = minimize(objective, np.zeros(k * dim + k), method="L-BFGS-B", options={"maxiter": 5000, "gtol": 1e-9})
    np.testing.assert_allclose(head.weight, reference.x[: k * dim].reshape(k, dim), atol=2e-3)
    np.testing.assert_allclose(head.bias, reference.x[k * dim:], atol=2e-3)
    ours = np.r_[head.weight.ravel(), head.bias].astype(np.float64)
    assert objective(ours) <= reference.fun + 1e-6


def test_the_mlp_learns_and_is_the_same_for_the_same_seed():
    rng = np.random.default_rng(2)
    y = rng.integers(0, 4, 200)
    x = (rng.normal(size=(200, 30)) + 2 * np.eye(4, 30)[y]).astype(np.float32)
    first = HeadFitter("mlp", x, y, 4, seed=5).fit(1e-2)
    assert (first.logits(x).argmax(axis=1) == y).mean() >= 0.9
    again = HeadFitter("mlp", x, y, 4, seed=5).fit(1e-2)
    np.testing.assert_array_equal(again.weight1, first.weight1)


@pytest.mark.torch
def test_adamw_takes_torchs_steps():
    import torch

    rng = np.random.default_rng(3)
    ours = rng.normal(size=(5, 7)).astype(np.float32)
    theirs = torch.tensor(ours.copy(), requires_grad=True)
    optimizer, reference = AdamW([ours], lr=1e-3, weight_decay=0.1), torch.optim.AdamW([theirs], lr=1e-3, weight_decay=0.1)
    for _ in range(5):
        grad = rng.normal(size=ours.shape).astype(np.float32)
        theirs.grad = torch.from_numpy(grad.copy())
        reference.step()
        optimizer.step([grad])
    np.testing.assert_allclose(ours, theirs.detach().numpy(), atol=1e-7)

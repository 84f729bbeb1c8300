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


def _rings(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two classes a line cannot split (an inner disc, an outer ring) in 8 dimensions."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 2
    radius = np.where(y == 0, rng.uniform(0, 1, n), rng.uniform(1.6, 2.6, n))
    angle = rng.uniform(0, 2 * np.pi, n)
    x = np.column_stack([radius * np.cos(angle), radius * np.sin(angle), rng.normal(0, 1, (n, 6))])
    return x.astype(np.float32), y


@pytest.mark.parametrize("nonlinear", [False, True])
def test_auto_keeps_the_simplest_head_unless_another_is_better_by_more_than_the_noise(nonlinear):
    """Linear classes: every kind scores alike and logreg is kept, with the rule and its
    standard error recorded. Rings: the MLP wins by far more than the noise and is kept."""
    from artstyle.model.training import train_head

    if nonlinear:
        x, y = _rings(240, seed=3)
    else:
        rng = np.random.default_rng(4)
        y = np.arange(240) % 3
        x = (rng.normal(0, 1, (240, 8)) + 2.5 * np.eye(3, 8)[y]).astype(np.float32)
    folds = np.arange(len(y)) % 4
    trained = train_head(x, y, int(y.max()) + 1, folds)
    selection = trained.info["selection"]
    scores = {kind: max(path.values()) for kind, path in trained.info["held_out_macro_f1"].items()}
    assert 0 < selection["standard_error"] < 0.1 and selection["best_macro_f1"] == max(scores.values())
    assert trained.head_kind == ("mlp" if nonlinear else "logreg"), (scores, selection)
    if not nonlinear:  # on these draws another kind edges ahead by less than the noise
        assert selection["best_kind"] != "logreg"
        assert scores["logreg"] >= max(scores.values()) - selection["standard_error"]

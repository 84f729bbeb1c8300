"""Head solvers: the torch-free fitters (`model/head_fitting.py`) against the torch ones
they replaced (kept below as the baseline) and scikit-learn's logistic regression, on the
same features and folds.

    python benchmarks/head_solvers.py ../shared/data/paintings ../shared/data/wikiart [--folds 3]

Artist-disjoint folds over every painting given; for each head kind the whole
regularisation path is fitted on each fold's training side (warm starts, as
cross-validation fits it) by both solvers, in one process with 1 and then 2 threads
(BLAS and torch). Prints per kind: held-out top-1 and macro-F1 at every alpha with the
paired difference and its standard error, seconds per path at each thread count, and
how far the weights are apart (relative L2) at 40 iterations and when both run to
convergence.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from artstyle import StyleClassifier
from artstyle.data.dataset import scan_dataset
from artstyle.data.splits import make_folds
from artstyle.model import head_fitting
from artstyle.model.head import LinearHead, MLPHead
from artstyle.model.head_fitting import ALPHAS, HeadFitter
from artstyle.model.metrics import macro_f1


class TorchFitter(HeadFitter):
    """The torch fitters as artstyle shipped them until they were replaced (full-batch
    L-BFGS with strong Wolfe line search; AdamW for the MLP)."""

    def fit(self, alpha: float):
        import torch
        import torch.nn.functional as F

        x, y = torch.from_numpy(self.x), torch.from_numpy(self.y)
        sw = torch.from_numpy(self.sample_weight)
        n = len(self.present)
        if self.kind == "mlp":
            torch.manual_seed(self.seed)
            generator = torch.Generator().manual_seed(self.seed)
            net = torch.nn.Sequential(torch.nn.Dropout(0.2), torch.nn.Linear(x.shape[1], head_fitting.MLP_HIDDEN),
                                      torch.nn.ReLU(), torch.nn.Dropout(0.5), torch.nn.Linear(head_fitting.MLP_HIDDEN, n))
            optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=alpha)
            batch = min(len(y), 128)
            for _ in range(head_fitting.MLP_STEPS):
                idx = torch.randperm(len(y), generator=generator)[:batch]
                optimizer.zero_grad()
                (sw[idx] * F.cross_entropy(net(x[idx]), y[idx], reduction="none")).mean().backward()
                optimizer.step()
            w2, b2 = self._scatter(net[4].weight.detach().numpy(), net[4].bias.detach().numpy())
            return MLPHead(self.mean, self.scale, 1.0, weight1=net[1].weight.detach().numpy().copy(),
                           bias1=net[1].bias.detach().numpy().copy(), weight2=w2, bias2=b2)
        w, b = self._state or (np.zeros((n, x.shape[1]), np.float32), np.zeros(n, np.float32))
        w = torch.tensor(w).requires_grad_(True)
        b = torch.tensor(b).requires_grad_(True)
        targets = F.one_hot(y, n).float() * 2 - 1

        def loss():
            scores = x @ w.T + b
            if self.kind == "logreg":
                data = (sw * F.cross_entropy(scores, y, reduction="none")).mean()
            else:
                data = (sw[:, None] * torch.clamp(1 - targets * scores, min=0) ** 2).sum(dim=1).mean()
            return data + 0.5 * alpha * (w * w).sum()

        optimizer = torch.optim.LBFGS([w, b], lr=1.0, max_iter=head_fitting.LBFGS_ITERATIONS, tolerance_grad=1e-6,
                                      tolerance_change=1e-10, history_size=20, line_search_fn="strong_wolfe")

        def closure():
            optimizer.zero_grad()
            value = loss()
            value.backward()
            return value

        optimizer.step(closure)
        self._state = (w.detach().numpy().copy(), b.detach().numpy().copy())
        weight, bias = self._scatter(*self._state)
        return LinearHead(self.mean, self.scale, 1.0, weight=weight, bias=bias)


class SklearnFitter(HeadFitter):
    """scikit-learn's multinomial L-BFGS on the same objective (its penalty |W|^2 / (2 C n);
    with two classes one vector v = w1 - w0 whose penalty is half the two rows')."""

    def _fit_logreg(self, alpha: float):
        import warnings

        from sklearn.exceptions import ConvergenceWarning
        from sklearn.linear_model import LogisticRegression

        binary = len(self.present) == 2
        if not hasattr(self, "_model"):
            self._model = LogisticRegression(max_iter=head_fitting.LBFGS_ITERATIONS, tol=1e-6, warm_start=True)
        self._model.set_params(C=1.0 / ((alpha / 2 if binary else alpha) * len(self.y)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self._model.fit(self.x, self.y, sample_weight=self.sample_weight)
        weight, bias = self._model.coef_.astype(np.float32), self._model.intercept_.astype(np.float32)
        return (np.stack([-weight[0], weight[0]]) / 2, np.r_[-bias, bias] / 2) if binary else (weight, bias)


def path_scores(fitter_type, kind, x, y, n_classes, folds, threads, seed=0):
    """Held-out predictions at every alpha of the path, the seconds it took, the last weights.
    `threads` caps BLAS and torch; the numpy linear fits cap themselves at FIT_THREADS."""
    import torch

    torch.set_num_threads(threads)
    predicted = {alpha: np.zeros(len(y), np.int64) for alpha in ALPHAS[kind]}
    seconds, weights = 0.0, []
    with threadpool_limits(threads):
        for fold in sorted(set(folds[folds >= 0].tolist())):
            train, test = folds != fold, folds == fold
            start = time.perf_counter()
            fitter = fitter_type(kind, x[train], y[train], n_classes, seed=seed)
            for alpha in ALPHAS[kind]:
                head = fitter.fit(alpha)
                predicted[alpha][test] = head.logits(x[test]).argmax(axis=1)
            seconds += time.perf_counter() - start
            weights.append(head.weights())
    return predicted, seconds, weights


def converged_gap(kind: str, x, y, n_classes, alpha: float) -> float:
    """Relative L2 distance of the two solvers' weights when both run to convergence."""
    saved = head_fitting.LBFGS_ITERATIONS
    head_fitting.LBFGS_ITERATIONS = 2000
    try:
        a = HeadFitter(kind, x, y, n_classes).fit(alpha).weight
        b = TorchFitter(kind, x, y, n_classes).fit(alpha).weight
    finally:
        head_fitting.LBFGS_ITERATIONS = saved
    return float(np.linalg.norm(a - b) / np.linalg.norm(b))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="+")
    parser.add_argument("--features", default="sized+texture")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--kinds", default="logreg,svm,mlp")
    parser.add_argument("--mlp-seeds", type=int, default=5, help="the MLP's draws (dropout, batches) per solver")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args()

    dataset = scan_dataset(args.data, show_progress=False)
    records = list(dataset.records)
    clf = StyleClassifier(features=args.features, cache_dir=args.cache_dir or True, show_progress=False)
    x = clf.extract([dataset.abspath(r) for r in records], [r.sha256 for r in records]).features
    labels = sorted(dataset.labels)
    y = np.array([labels.index(r.label) for r in records])
    folds = make_folds(records, args.folds, "artist", seed=args.seed)
    held = folds >= 0
    print(f"{len(y)} paintings, {x.shape[1]} features, {len(labels)} movements, {args.folds} artist-disjoint folds")
    for kind in args.kinds.split(","):
        runs = {}
        arms = (("torch", TorchFitter), ("numpy", HeadFitter)) + ((("sklearn", SklearnFitter),) if kind == "logreg" else ())
        for name, fitter_type in arms:
            for threads in (1, 2):
                runs[name, threads] = path_scores(fitter_type, kind, x, y, len(labels), folds, threads)
        print(f"\n{kind}: seconds per path over {args.folds} folds: "
              + ", ".join(f"{name} {threads} thread(s) {runs[name, threads][1]:.1f}" for name, threads in runs)
              + f"; numpy/torch at 1 thread {runs['numpy', 1][1] / runs['torch', 1][1]:.2f}x, "
              f"at 2 {runs['numpy', 2][1] / runs['torch', 2][1]:.2f}x; numpy at 2 against torch at its best "
              f"{runs['numpy', 2][1] / min(runs['torch', 1][1], runs['torch', 2][1]):.2f}x")
        if kind == "mlp":  # a stochastic fit: compare the means over seeds (the two draw differently)
            draws = {name: [path_scores(f, kind, x, y, len(labels), folds, 2, seed)[0] for seed in range(args.mlp_seeds)]
                     for name, f in (("torch", TorchFitter), ("numpy", HeadFitter))}
            for alpha in ALPHAS[kind]:
                top1 = {name: np.array([(d[alpha][held] == y[held]).mean() for d in runs_])
                        for name, runs_ in draws.items()}
                gap = top1["numpy"].mean() - top1["torch"].mean()
                noise = np.sqrt(sum(t.var(ddof=1) / len(t) for t in top1.values()))
                print(f"  alpha {alpha:g}, {args.mlp_seeds} seeds: top-1 torch {top1['torch'].mean():.3f} "
                      f"(sd {top1['torch'].std(ddof=1):.3f}), numpy {top1['numpy'].mean():.3f} "
                      f"(sd {top1['numpy'].std(ddof=1):.3f}); difference {gap:+.3f} +- {noise:.3f}")
            continue
        for other in [name for name, _ in arms[1:]]:
            old, new = runs["torch", 2][0], runs[other, 2][0]
            print(f"  {other} against torch:")
            for alpha in ALPHAS[kind]:
                a, b = old[alpha][held] == y[held], new[alpha][held] == y[held]
                diff = b.astype(float) - a
                print(f"    alpha {alpha:g}: top-1 torch {a.mean():.3f} {other} {b.mean():.3f} "
                      f"(paired {diff.mean():+.3f} +- {diff.std(ddof=1) / np.sqrt(len(diff)):.3f}; "
                      f"{(old[alpha][held] == new[alpha][held]).mean():.0%} same answers); macro-F1 "
                      f"{macro_f1(y[held], old[alpha][held], len(labels)):.3f} / "
                      f"{macro_f1(y[held], new[alpha][held], len(labels)):.3f}")
            last = [np.linalg.norm(n["weight"] - o["weight"]) / np.linalg.norm(o["weight"])
                    for n, o in zip(runs[other, 2][2], runs["torch", 2][2])]
            print(f"    weights at the last alpha, 40 iterations: {np.mean(last):.3f} apart (relative L2)")
        print(f"  numpy and torch run to convergence at alpha 0.1 on all rows: weights "
              f"{converged_gap(kind, x, y, len(labels), 0.1):.4f} apart")


if __name__ == "__main__":
    main()

"""Do the probabilities hold for paintings by unseen artists? Calibration methods compared.

    python benchmarks/calibration.py ../shared/data/paintings [--features multicrop] [--seeds 3]

Outer artist-disjoint 5-fold cross-validation, repeated with several seeds: on each outer
training side the head is chosen as `artstyle train` does, then the final head (fitted on
the whole outer training side) is calibrated by each method and scored on the held-out
artists. Methods:

* `temperature (5 folds)`: what artstyle does, temperature by NLL on 5 artist-disjoint folds;
* `temperature (K folds)`: the same with more, smaller folds, whose models are nearer the final one;
* `extrapolated`: log temperature extrapolated from 2 and 10 folds to the whole training side
  (a fold-size correction);
* `cross-fit (K folds)`: the mean of the fold models' calibrated probabilities replaces the final head.

ECE (15 bins, top-1) is pooled over every outer fold and seed. The noise floor is the ECE a
perfectly calibrated model with the same confidences would show on as many images: below
it, differences are chance.
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from artstyle import StyleClassifier
from artstyle.data.dataset import scan_dataset
from artstyle.data.splits import make_folds
from artstyle.model.calibration import fit_temperature
from artstyle.model.head import HEAD_KINDS, softmax
from artstyle.model.head_fitting import HeadFitter
from artstyle.model.metrics import expected_calibration_error
from artstyle.model.training import calibration_folds, train_head


def _fold_models(records, x, y, n_classes, k, kind, alpha):
    """(temperature from out-of-fold logits, fold models) for k artist-disjoint folds."""
    folds = make_folds(records, k, "artist", seed=0)
    logits, models = np.zeros((len(y), n_classes)), []
    for fold in sorted(set(folds[folds >= 0].tolist())):
        train, test = folds != fold, folds == fold
        models.append(HeadFitter(kind, x[train], y[train], n_classes).fit(alpha))
        logits[test] = models[-1].logits(x[test])
    held = folds >= 0
    return fit_temperature(logits[held], y[held]), models


def noise_floor(proba: np.ndarray, rng: np.random.Generator, trials: int = 50) -> float:
    """Mean ECE of labels drawn so that each top-1 answer is right with its stated probability."""
    top, confidence = proba.argmax(axis=1), proba.max(axis=1)
    return float(np.mean([
        expected_calibration_error(proba, np.where(rng.random(len(top)) < confidence, top, -1)) for _ in range(trials)
    ]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--features", default="multicrop")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--many-folds", type=int, default=10)
    parser.add_argument("--head", default="logreg", help="head kind (auto's MLP makes this slow)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    clf = StyleClassifier(args.backbone, features=args.features, show_progress=False)
    dataset = scan_dataset(args.data, show_progress=False)
    records = list(dataset.records)
    x = clf.extract([dataset.abspath(r) for r in records], [r.sha256 for r in records]).features
    labels = sorted(dataset.labels)
    y = np.array([labels.index(r.label) for r in records])
    n, k = len(labels), args.many_folds
    methods = ("temperature (5 folds)", f"temperature ({k} folds)", "extrapolated", f"cross-fit ({k} folds)")
    proba: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    truth, temperatures = [], []
    for seed in range(args.seeds):
        outer = make_folds(records, 5, "artist", seed=seed)
        for fold in range(5):
            test, train = np.flatnonzero(outer == fold), np.flatnonzero(outer != fold)
            inner = [records[i] for i in train]
            folds, _ = calibration_folds(inner, seed=0)
            kinds = HEAD_KINDS if args.head == "auto" else (args.head,)
            trained = train_head(x[train], y[train], n, folds, kinds=kinds, labels=labels)
            kind, alpha = trained.head_kind, trained.info["alpha"]
            logits = trained.head.logits(x[test])
            t2, _ = _fold_models(inner, x[train], y[train], n, 2, kind, alpha)
            tk, models = _fold_models(inner, x[train], y[train], n, k, kind, alpha)
            t_extra = float(np.exp(np.log(tk) - (np.log(tk) - np.log(t2)) / (np.log(1 - 1 / k) - np.log(0.5))
                                   * np.log(1 - 1 / k)))
            proba[methods[0]].append(softmax(logits / trained.head.temperature))
            proba[methods[1]].append(softmax(logits / tk))
            proba[methods[2]].append(softmax(logits / t_extra))
            proba[methods[3]].append(np.mean([softmax(m.logits(x[test]) / tk) for m in models], axis=0))
            truth.append(y[test])
            temperatures.append({"5": trained.head.temperature, "2": t2, str(k): tk, "extrapolated": t_extra})
    y_true = np.concatenate(truth)
    rng = np.random.default_rng(0)
    rows = []
    for method, parts in proba.items():
        p = np.concatenate(parts)
        rows.append({"method": method, "images": int(len(y_true)), "top1": float((p.argmax(1) == y_true).mean()),
                     "mean_confidence": float(p.max(1).mean()), "ece": expected_calibration_error(p, y_true),
                     "noise_floor": noise_floor(p, rng)})
    if args.json:
        print(json.dumps({"rows": rows, "temperatures": temperatures}, indent=2))
        return
    print(f"{args.backbone} {args.features}: {len(records)} paintings, outer 5-fold by artist x {args.seeds} seeds, "
          f"{len(y_true)} held-out predictions")
    print(f"{'method':26s} {'top-1':>6s} {'mean conf':>9s} {'ECE':>6s} {'noise floor':>11s}")
    for r in rows:
        print(f"{r['method']:26s} {r['top1']:6.3f} {r['mean_confidence']:9.3f} {r['ece']:6.3f} {r['noise_floor']:11.3f}")
    spread = {key: [t[key] for t in temperatures] for key in temperatures[0]}
    print("temperature by folds (median over outer folds): "
          + ", ".join(f"{key}: {np.median(v):.2f}" for key, v in spread.items()))


if __name__ == "__main__":
    main()

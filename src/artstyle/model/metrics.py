"""Evaluation numbers: accuracy, top-k, per-class precision/recall/F1, calibration."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from ..data.families import Families

# the figures every screen heads with
HEADLINE = ("n_images", "accuracy", "top3_accuracy", "family_accuracy", "macro_f1", "ece")


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class."""
    matrix = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true), np.asarray(y_pred)), 1)
    return matrix


def _per_class(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    tp = np.diag(matrix).astype(np.float64)
    support = matrix.sum(axis=1).astype(np.float64)
    predicted = matrix.sum(axis=0).astype(np.float64)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, support, out=np.zeros_like(tp), where=support > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return precision, recall, f1, support


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> float:
    """Mean F1 over the classes that occur in y_true."""
    _, _, f1, support = _per_class(confusion_matrix(y_true, y_pred, n_classes))
    return float(f1[support > 0].mean()) if (support > 0).any() else 0.0


def macro_f1_standard_error(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, draws: int = 200,
                            seed: int = 0) -> float:
    """Bootstrap standard error of `macro_f1` (rows resampled `draws` times): how far two
    heads' held-out macro-F1 may differ by the luck of which paintings were held out."""
    if len(y_true) < 2:
        return 0.0
    rows = np.random.default_rng(seed).integers(0, len(y_true), (draws, len(y_true)))
    return float(np.std([macro_f1(y_true[r], y_pred[r], n_classes) for r in rows], ddof=1))


def wilson_interval(share: float, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % (Wilson score) interval of a proportion `share` measured on `n` images: honest
    near 0 and 1 and for a few dozen images, where share ± 2 standard errors is not."""
    if n <= 0:
        return 0.0, 1.0
    centre = (share + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * (share * (1 - share) / n + z * z / (4 * n * n)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


def share_text(share: float, n: int, decimals: int = 1) -> str:
    """'39.8 % (34.8-45.1 %, n = 344)': a share with its 95 % Wilson interval and its sample,
    the one way every screen states an accuracy ("n = 0" says nothing was measured)."""
    if n <= 0:
        return "not measured (n = 0)"
    low, high = wilson_interval(share, n)
    return f"{100 * share:.{decimals}f} % ({100 * low:.{decimals}f}-{100 * high:.{decimals}f} %, n = {n:,})"


def reliability(proba: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, count) of the top-1 answers in each non-empty
    equal-width confidence bin: the points of a reliability diagram."""
    confidence = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    bins = np.minimum((confidence * n_bins).astype(int), n_bins - 1)
    return [(float(confidence[bins == b].mean()), float(correct[bins == b].mean()), int((bins == b).sum()))
            for b in np.unique(bins)]


def expected_calibration_error(proba: np.ndarray, y_true: np.ndarray, n_bins: int = 15) -> float:
    """Mean |confidence - accuracy| over equal-width confidence bins, weighted by bin size."""
    if not len(y_true):
        return 0.0
    return float(sum(n * abs(c - a) for c, a, n in reliability(proba, y_true, n_bins)) / len(y_true))


def top_k_accuracy(proba: np.ndarray, y_true: np.ndarray, k: int) -> float:
    if len(y_true) == 0:
        return 0.0
    top = np.argsort(-proba, axis=1)[:, :k]
    return float((top == np.asarray(y_true)[:, None]).any(axis=1).mean())


def classification_metrics(y_true: np.ndarray, proba: np.ndarray, labels: list[str],
                           keys: Sequence[str] | None = None) -> dict:
    """The JSON-ready metrics block of `artstyle evaluate` and metrics.json. With `keys`
    (content hashes per row), identical images are scored once (`score_once`)."""
    merged = None
    if keys is not None:
        kept, y_true, merged = score_once(keys, y_true, proba)
        proba = proba[kept]
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = proba.argmax(axis=1) if len(y_true) else np.zeros(0, np.int64)
    families = Families(labels)
    matrix = confusion_matrix(y_true, y_pred, len(labels))
    precision, recall, f1, support = _per_class(matrix)
    tested = support > 0
    return {
        "n_images": int(len(y_true)),
        "accuracy": float((y_pred == y_true).mean()) if len(y_true) else 0.0,
        "top3_accuracy": top_k_accuracy(proba, y_true, 3),
        "family_accuracy": families.accuracy(proba, y_true),
        "families": {name: [labels[c] for c in cols] for name, cols in families.members.items() if len(cols) > 1},
        "macro_f1": float(f1[tested].mean()) if tested.any() else 0.0,
        "ece": expected_calibration_error(proba, y_true),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, label in enumerate(labels)
        },
        "untested": [label for i, label in enumerate(labels) if not tested[i]],
        "confusion": {"labels": list(labels), "matrix": matrix.tolist()},
        **({"in_several_movements": merged} if merged is not None else {}),
    }


def score_once(keys: Sequence[str], y_true: np.ndarray, proba: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """(rows to score, their true class, images merged) with an image filed under several
    movements (the same bytes in two folders, e.g. WikiArt's romanticism and symbolism) scored
    once: a genuinely mixed painting, right when the model names any of its movements. Its
    true class is the one of its movements the model ranks highest."""
    rows: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        rows[key].append(i)
    kept = np.array(sorted(group[0] for group in rows.values()), dtype=np.int64)
    y = np.asarray(y_true, dtype=np.int64).copy()
    merged = 0
    for group in rows.values():
        movements = np.unique(y[group])
        if len(movements) > 1:
            y[group[0]] = movements[np.argmax(proba[group[0], movements])]
            merged += 1
    return kept, y[kept], merged


SMALL_SIDE = 256  # short sides up to this are web copies, thumbnails and phone crops ("small")


def size_band(short_side: int | None) -> str:
    """The size band a painting is reported in."""
    if not short_side:
        return "size unknown"
    return f"small (short side <= {SMALL_SIDE} px)" if short_side <= SMALL_SIDE else "full size"


def metrics_by_group(y_true: np.ndarray, proba: np.ndarray, labels: list[str], groups: Sequence[str],
                     keys: Sequence[str] | None = None) -> dict[str, dict]:
    """The headline scores per group of rows (size band, source), so a model that is good at
    full size and poor on thumbnails, or on one source only, shows it."""
    group_of = np.asarray(groups, dtype=object)
    out = {}
    for group in sorted(set(group_of.tolist())):
        rows = np.flatnonzero(group_of == group)
        m = classification_metrics(y_true[rows], proba[rows], labels, keys=[keys[int(i)] for i in rows] if keys else None)
        out[group] = {k: m[k] for k in HEADLINE}
    return out


def family_text(metrics: dict, decimals: int = 1) -> str | None:
    """'family top-1 71.0 % (64.9-76.4 %, n = 220)' when the model's movements form families
    of two or more (`data.families`); None otherwise, or for metrics from before families."""
    if not metrics.get("families") or "family_accuracy" not in metrics:
        return None
    return f"family top-1 {share_text(metrics['family_accuracy'], metrics['n_images'], decimals)}"


def slices(metrics: dict) -> list[tuple[str, dict]]:
    """A metrics block's scores per size band (when it has more than one) and per source, as
    (name, scores): what `train`, `evaluate` and the report show beside the headline."""
    by_size = metrics.get("by_size", {})
    groups = [(f"size: {name}", m) for name, m in by_size.items() if len(by_size) > 1]
    return groups + [(f"source: {name}", m) for name, m in metrics.get("by_source", {}).items()]


def knows_none(metrics: dict) -> bool:
    """True when images were scored but none is of a movement the model knows (a folder of
    photos and charts): every movement answer is then a miss by construction, no test of skill."""
    return bool(metrics.get("n_images")) and metrics.get("known_movements") == []


def no_slices_reason(metrics: dict) -> str | None:
    """Why a metrics block has no slices to show (None when it has some)."""
    if slices(metrics) or not metrics.get("n_images"):
        return None
    band = next(iter(metrics.get("by_size", {})), "one size band")
    return (f"No scores per size band or source: every scored image is in one size band ({band}) and comes "
            "from one folder.")

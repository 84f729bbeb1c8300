"""Fitting the head the honest way: choose, calibrate and set thresholds on held-out folds.

Every candidate (head kind x regularisation) is scored by cross-validation over the
training images, with folds that keep artists apart. The winner by held-out macro-F1 is
refitted on all training images; its temperature, "uncertain" threshold, "mixed"
margin and the painting detector are fitted on the held-out (out-of-fold) predictions,
which are what a painting by a new artist looks like to the model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data.dataset import ImageRecord, LabelledImages
from ..data.splits import Split, make_folds
from ..errors import DatasetError
from ..features.size_variants import Variants
from ..timing import stage
from .balancing import RowWeighting
from .calibration import Abstention, fit_temperature, nll, source_weights
from .head import HEAD_KINDS, Head, softmax
from .head_fitting import ALPHAS, HeadFitter
from .metrics import HEADLINE, classification_metrics, macro_f1, macro_f1_standard_error, size_band
from .painting import NonPaintings, PaintingDetector, fit_painting_detector
from .text_prior import PRIOR_PAINTINGS, TextPrior

log = logging.getLogger("artstyle")

FALLBACK = ("logreg", 1e-2)  # used when there are no folds to choose with
CV_FOLDS = 5
LARGE_CV_FOLDS, LARGE = 3, 3000  # from this many training paintings, 3 folds hold >= 1,000 each
PATH_PATIENCE = 2  # held-out macro-F1 falls in a row that end a regularisation path


def calibration_folds(records: Sequence[ImageRecord], seed: int = 0, k: int | None = None) -> tuple[np.ndarray, str]:
    """Folds over training records: by artist, which is what unseen paintings look like,
    unless too few artists are known (then by image). `k` defaults to 5, or 3 from LARGE
    records on (each fit then sees 2/3 of the data; selection costs 2.4x less than 5 folds)."""
    if k is None:
        k = LARGE_CV_FOLDS if len(records) >= LARGE else CV_FOLDS
    folds = make_folds(records, k, "artist", seed=seed)
    if (folds >= 0).mean() >= 0.5:
        return folds, "artist"
    return make_folds(records, k, "stratified", seed=seed), "image"


@dataclass
class TrainingTable:
    """Rows of the feature matrix by role: `y[i]` is record i's index into `labels` (-1 for
    a movement left out), `train`/`test` the usable rows the head trains on and is tested on."""

    labels: list[str]
    y: np.ndarray
    train: np.ndarray
    test: np.ndarray


def training_table(records: Sequence[ImageRecord], split: Split, ok: np.ndarray) -> TrainingTable:
    """Classes are the movements with readable training images; unreadable rows and rows of
    a movement without training images take no part. The head trains on "train" and "val"
    rows alike (val: artists a fine-tuned backbone never learnt)."""
    training = split.select(records, "train") + split.select(records, "val")
    labels = sorted({records[i].label for i in training if ok[i]})
    dropped = sorted({r.label for r in records} - set(labels))
    if dropped:
        log.warning("no readable training images for %s: left out of the model", ", ".join(dropped))
    if len(labels) < 2:
        raise DatasetError("need at least two classes with readable training images")
    index = {label: i for i, label in enumerate(labels)}
    y = np.array([index.get(r.label, -1) for r in records], dtype=np.int64)
    usable = ok & (y >= 0)

    def rows(indices: list[int]) -> np.ndarray:
        return np.array([i for i in sorted(indices) if usable[i]], dtype=np.int64)

    return TrainingTable(labels, y, rows(training), rows(split.select(records, "test")))


@dataclass
class HeadRows:
    """What the head fits: the training paintings' rows, then their size variants' rows
    (each with its painting's label and fold, never scored), and how much each counts."""

    x: np.ndarray
    y: np.ndarray
    folds: np.ndarray
    scored: np.ndarray  # True for the paintings themselves
    weighting: RowWeighting
    groups: np.ndarray  # source and size band per row: the painting detector holds its flag rate in each

    @property
    def n_paintings(self) -> int:
        return int(self.scored.sum())


def head_rows(x: np.ndarray, y: np.ndarray, folds: np.ndarray, sources: Sequence[str], artists: Sequence[str],
              balance: str, short_sides: Sequence[int | None] | None = None, variants: Variants | None = None,
              variant_x: np.ndarray | None = None) -> HeadRows:
    """Rows of paintings `x` (labels `y`, `folds`, each one's source, artist and short side)
    followed by their size `variants` (features `variant_x`, parents indexing `x`),
    weighted by `balance`."""
    parents = np.zeros(0, np.int64) if variants is None else variants.parents
    take = np.concatenate([np.arange(len(y)), parents])
    if variant_x is not None and len(parents):
        x = np.concatenate([x, variant_x.astype(x.dtype, copy=False)])
    scored = np.arange(len(take)) < len(y)
    multiplicity = np.where(scored, 1.0, variants.weight if variants is not None else 1.0)
    source_of = np.asarray(sources, dtype=object)[take]
    weighting = RowWeighting(balance, y[take], source_of, np.asarray(artists, dtype=object)[take], multiplicity)
    sides = [*(short_sides if short_sides is not None else [None] * len(y)),
             *(variants.short_sides if variants is not None else [])]
    groups = np.array([f"{source}|{size_band(side)}" for source, side in zip(source_of, sides)], dtype=object)
    return HeadRows(x, y[take], folds[take], scored, weighting, groups)


def scorable_rows(y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Held-out rows (fold >= 0) whose class also has training rows outside their fold."""
    held = folds >= 0
    for fold in np.unique(folds[held]):
        absent = np.setdiff1d(np.unique(y[folds == fold]), y[folds != fold])
        held[(folds == fold) & np.isin(y, absent)] = False
    return held


@dataclass
class TrainedHead:
    head: Head
    head_kind: str
    abstention: Abstention
    detector: PaintingDetector | None
    info: dict = field(default_factory=dict)
    held_out_proba: np.ndarray | None = None  # calibrated out-of-fold probabilities (rows of `held_out`)
    held_out: np.ndarray | None = None  # which rows were scored out of fold (`scorable_rows`)
    # calibrated out-of-fold logits of every row `scorable_rows` allows, size variants included
    # (zeros elsewhere): what a band's calibration reads beside the paintings themselves
    out_of_fold: np.ndarray | None = None
    out_of_fold_rows: np.ndarray | None = None


def _held_out_path(kind: str, x: np.ndarray, y: np.ndarray, n_classes: int, folds: np.ndarray, fold_ids: list[int],
                   held: np.ndarray, seed: int, weighting: RowWeighting | None) -> dict[float, tuple[np.ndarray, float]]:
    """Out-of-fold logits and macro-F1 of `kind` along its regularisation path, strong to weak
    (each fold's fit warm-starts from the previous alpha). The path stops once macro-F1 has
    fallen PATH_PATIENCE times in a row: weaker alphas only overfit more, and on 20k
    paintings each step costs minutes."""
    fitters = {}
    path: dict[float, tuple[np.ndarray, float]] = {}
    falls, last = 0, -1.0
    for alpha in ALPHAS[kind]:
        logits = np.zeros((len(y), n_classes), np.float32)
        for fold in fold_ids:
            train, test = folds != fold, folds == fold
            if fold not in fitters:
                fitters[fold] = HeadFitter(kind, x[train], y[train], n_classes, seed=seed,
                                           sample_weight=weighting(train) if weighting else None)
            logits[test] = fitters[fold].fit(alpha).logits(x[test])
        f1 = macro_f1(y[held], logits[held].argmax(axis=1), n_classes)
        path[alpha] = (logits, f1)
        falls = falls + 1 if f1 < last else 0
        last = f1
        if falls >= PATH_PATIENCE:
            break
    return path


def _prior_out_of_fold(prior: TextPrior, x: np.ndarray, y: np.ndarray, n_classes: int, folds: np.ndarray,
                       fold_ids: list[int], paintings: np.ndarray) -> np.ndarray:
    """Each row's prior logits, weighed by the paintings of the folds it was not in (what
    the head scoring it was trained on)."""
    out = np.zeros((len(y), n_classes), np.float32)
    for fold in fold_ids:
        test = folds == fold
        counts = np.bincount(y[(folds != fold) & paintings], minlength=n_classes)
        out[test] = prior.for_counts(counts).logits(x[test])
    return out


def _simplest_within_one_error(best_of_kind: dict[str, tuple], oof: dict[tuple[str, float], np.ndarray],
                               y: np.ndarray, held: np.ndarray, n_classes: int, seed: int) -> tuple[tuple, dict]:
    """The one-standard-error rule over head kinds: the first kind (simplest first, as
    `HEAD_KINDS` orders them) whose best held-out macro-F1 is within one bootstrap standard
    error of the best of all. Without it, the MLP's random draws alone could swing the
    choice between two installs or two seeds."""
    top = max(best_of_kind.values(), key=lambda b: b[:2])
    _, _, kind, alpha, _ = top
    error = macro_f1_standard_error(y[held], oof[(kind, alpha)][held].argmax(axis=1), n_classes, seed=seed)
    chosen = next(b for b in best_of_kind.values() if b[0] >= top[0] - error)
    return chosen, {"rule": "simplest head kind within one standard error of the best held-out macro-F1",
                    "standard_error": round(error, 4), "best_kind": kind, "best_macro_f1": round(top[0], 4)}


def held_out_summary(proba: np.ndarray, y: np.ndarray, abstention: Abstention, labels: list[str]) -> dict:
    """config.json's held-out figures: the scores, and how often the model is sure and right then."""
    metrics = classification_metrics(y, proba, labels)
    summary = {k: metrics[k] for k in HEADLINE}
    sure = ~abstention.flags(proba)[0]
    right = proba.argmax(axis=1) == y
    summary.update(sure_share=float(sure.mean()), accuracy_when_sure=float(right[sure].mean()) if sure.any() else None)
    return summary


def train_head(
    x: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    folds: np.ndarray,
    *,
    kinds: tuple[str, ...] = HEAD_KINDS,
    negatives: NonPaintings | None = None,
    labels: list[str] | None = None,
    seed: int = 0,
    weighting: RowWeighting | None = None,
    scored: np.ndarray | None = None,
    groups: np.ndarray | None = None,
    prior: TextPrior | None = None,
) -> TrainedHead:
    """Select, refit and calibrate a head on features `x` with labels `y`.

    `folds[i]` is the cross-validation fold of row i, or -1 for rows that always train
    (classes too small to hold out). A row whose class has no training rows outside its
    fold is not scored (its fold's head gives that class no probability), nor is one
    outside `scored` (a painting's size variant: it trains, the painting is what is
    scored). `weighting` gives each fit its rows' weights (None: classes balanced).
    `negatives` (non-paintings' features) enable the painting detector, whose threshold
    holds in each of `groups` (per row, e.g. size band and source; see `HeadRows.groups`).
    `prior` (a `TextPrior`) adds zero-shot logits, weighed by each class's paintings, to
    every head compared and to the one kept.
    """
    y = np.asarray(y, dtype=np.int64)
    fold_ids = [f for f in range(folds.max() + 1) if (folds == f).any()] if len(folds) else []
    scorable = scorable_rows(y, folds)
    held = scorable & scored if scored is not None else scorable
    scores: dict[str, dict[str, float]] = {}
    best = selection = None
    best_of_kind: dict[str, tuple[float, float, str, float, float]] = {}
    oof_by_candidate: dict[tuple[str, float], np.ndarray] = {}
    calibration_weights = source_weights(weighting.sources[held]) if weighting is not None else None
    paintings = scored if scored is not None else np.ones(len(y), bool)
    prior_oof = _prior_out_of_fold(prior, x, y, n_classes, folds, fold_ids, paintings) if prior is not None else None
    without_prior: dict[tuple[str, float], float] = {}
    if len(fold_ids) >= 2:
        for kind in kinds:
            log.info("head: cross-validating %s on %d folds (%d of %d kinds)", kind, len(fold_ids),
                     kinds.index(kind) + 1, len(kinds))
            with stage(f"head selection: {kind}"):
                path = _held_out_path(kind, x, y, n_classes, folds, fold_ids, held, seed, weighting)
            scores[kind] = {}
            for alpha, (logits, f1) in path.items():
                if prior_oof is not None:
                    without_prior[(kind, alpha)] = f1
                    logits = logits + prior_oof
                    f1 = macro_f1(y[held], logits[held].argmax(axis=1), n_classes)
                t = fit_temperature(logits[held], y[held], calibration_weights)
                loss = nll(logits[held] / t, y[held], calibration_weights)
                scores[kind][f"{alpha:g}"] = round(f1, 4)
                oof_by_candidate[(kind, alpha)] = logits
                if kind not in best_of_kind or (f1, -loss) > best_of_kind[kind][:2]:
                    best_of_kind[kind] = (f1, -loss, kind, alpha, t)
    if best_of_kind:
        best, selection = _simplest_within_one_error(best_of_kind, oof_by_candidate, y, held, n_classes, seed)
    if best is None:
        log.warning("too few artists to cross-validate: default head, probabilities not calibrated")
        kind, alpha, temperature = FALLBACK[0], FALLBACK[1], 1.0
    else:
        _, _, kind, alpha, temperature = best
    with stage("head refit"):
        head = HeadFitter(kind, x, y, n_classes, seed=seed, sample_weight=weighting() if weighting else None).fit_path(alpha)
    head.temperature = temperature
    info: dict = {"type": head.kind, "kind": kind, "alpha": alpha, "temperature": temperature,
                  "held_out_macro_f1": scores, "cv_folds": len(fold_ids)}
    if selection is not None:
        info["selection"] = selection
    if prior is not None:
        head.prior = prior.for_counts(np.bincount(y[paintings], minlength=n_classes))
        info["text_prior"] = {"paintings_at_half_weight": PRIOR_PAINTINGS,
                              "mix": {(labels or [str(i) for i in range(n_classes)])[c]: round(float(m), 3)
                                      for c, m in enumerate(head.prior.mix)}}
        if best is not None:
            info["text_prior"]["held_out_macro_f1"] = {"with": round(best[0], 4),
                                                       "without": round(without_prior[(kind, alpha)], 4)}
    held_out_proba = None
    abstention = Abstention()
    if best is not None:
        with stage("calibration and thresholds"):
            held_out_proba = softmax(oof_by_candidate[(kind, alpha)][held] / temperature)
            abstention = Abstention.fit(held_out_proba, y[held])
            info["held_out"] = held_out_summary(held_out_proba, y[held], abstention, labels or
                                                 [str(i) for i in range(n_classes)])
    info["abstention"] = abstention.to_dict()
    detector = None
    if negatives is not None and len(negatives.features):
        with stage("painting detector"):
            detector, info["painting_detector"] = fit_painting_detector(
                x, folds, negatives.features, columns=negatives.columns, negative_kinds=negatives.kinds,
                negative_sources=negatives.sources, groups=groups, seed=seed)
        info["painting_detector"].update(negatives.info)
    out_of_fold = oof_by_candidate[(kind, alpha)] / temperature if best is not None else None
    return TrainedHead(head, kind, abstention, detector, info, held_out_proba, held, out_of_fold, scorable)


def training_rows(clf, images: LabelledImages, table: TrainingTable, x: np.ndarray, folds: np.ndarray) -> HeadRows:
    """The training paintings of `clf` and their size variants (extracted here), weighted by its `balance`."""
    train = table.train
    records = [images.records[i] for i in train]
    sources, artists = [r.source for r in records], [r.artist for r in records]
    sides = [r.short_side for r in records]
    if clf.size_variants is None or clf.size_variants.copies == 0:
        return head_rows(x[train], table.y[train], folds, sources, artists, clf.balance, sides)
    plan = clf.size_variants.plan([images.sources[i] for i in train], [images.keys[i] for i in train], sides)
    with stage("size variants"):
        extraction = clf.extract(plan.images, plan.keys, "Size variants")
    for i, reason in sorted(extraction.errors.items()):  # the painting itself was read: rare, and harmless
        log.info("%s: no size variant (%s)", plan.images[i], reason)
    ok = extraction.ok
    log.info("size variants: %d of %d training paintings also seen at %d-%d px", len(set(plan.parents[ok])),
             len(train), clf.size_variants.low, clf.size_variants.high)
    return head_rows(x[train], table.y[train], folds, sources, artists, clf.balance, sides, plan.select(ok),
                     extraction.features[ok])

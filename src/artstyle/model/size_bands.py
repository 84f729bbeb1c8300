"""One model for full-size scans and small web copies: a correction per size band.

A collection merged from a full-size set (every movement) and a broad source of small
copies (WikiArt: six movements, hundreds of artists) trains a head that serves the small
copies well and the full-size paintings worse: the broad movements, seen through many
artists, take recall from the movements the broad source lacks (measured elsewhere on
unseen artists: abstract art 0.71 -> 0.29, early renaissance 0.80 -> 0.20).

So each size band gets its own temperature, and full-size pictures may get their own
logit correction: one bias per movement, fitted on the held-out (artist-disjoint,
out-of-fold) full-size paintings with every movement counting alike (a class-balanced
log-loss, shrunk towards zero), kept only when it raises their cross-fitted macro-F1.
The temperatures make "80 %" mean 80 % on thumbnails and on scans alike (the small
band's is fitted on the web copies and the full-size paintings' shrunk variants, each source
weighing the same). Small pictures keep the head's answer: they are what the broad source taught.

A picture's own vector says which band it is in: the `sized` recipes give a picture
tiles only when its short side has the pixels for them, so its tile max equals its tile
mean exactly when it is small. The ONNX export and every predict path read it the same way.

A second head trained on the full-size sources alone, blended with the broad one, was
measured first and dropped: on the shared paintings its held-out weight came out near 0.1
in every fold and it gained nothing (docs/notes/accuracy.md). On those paintings the bias is
rejected too (it cost 1.3 points of full-size top-1 where it was forced on): the shift it
corrects was reported on other artists' paintings, and shows here only in the tests'
generated collections.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace

import numpy as np
from scipy.optimize import minimize

from ..errors import ArtstyleError
from .calibration import Abstention, fit_temperature, source_weights
from .head import Head, head_from_tensors, kind_of, register_head, softmax
from .metrics import macro_f1

log = logging.getLogger("artstyle")

BANDS = ("small", "full size")
TILE_TOLERANCE = 1e-3  # |tile max - tile mean| within this share of |tile mean|: no tiles, a small picture
MIN_BAND = 50  # held-out paintings each band needs before the full-size band gets its own correction
BIAS_L2 = 0.1  # shrinkage of the bias towards zero, per unit of mean log-loss
MIN_CLASS_WEIGHT_COUNT = 5  # a movement with fewer held-out full-size paintings weighs as if it had this many


def small_pictures(features, tiles: tuple[int, int]):
    """True per row for pictures too small for tiles: the tile max block (after the tile
    mean block, columns `tiles`) equals the mean block. numpy arrays or torch tensors."""
    start, stop = tiles
    mean, top = features[:, start:stop], features[:, stop:2 * stop - start]
    return abs(top - mean).sum(1) <= TILE_TOLERANCE * (abs(mean).sum(1) + 1e-6)


def tile_columns(embedding_dim: int, grid: int, sized: bool) -> tuple[int, int] | None:
    """Columns of the first backbone's tile-mean block when the recipe sizes its tiles
    (`pool_views`: global view, tile mean, tile max, statistics); None otherwise."""
    return (embedding_dim, 2 * embedding_dim) if sized and grid > 1 else None


@register_head
@dataclass(kw_only=True)
class SizeBandHead(Head):
    """(base scores / base temperature + the band's bias) x the band's inverse temperature.
    `mean`/`scale` are the base head's (they set `dim`)."""

    base: Head
    tiles: tuple[int, int]
    band_bias: np.ndarray  # (2, n_classes): small, full size
    band_scale: np.ndarray  # (2,): inverse temperature of each band
    kind = "size_bands"
    tensor_names = ("band_bias", "band_scale", "band_tiles", "base_temperature")

    @property
    def n_classes(self) -> int:
        return self.base.n_classes

    def raw_scores(self, features):
        small = (small_pictures(features, self.tiles) * 1.0)[:, None]
        bias = self.band_bias[1] + (self.band_bias[0] - self.band_bias[1]) * small
        scale = self.band_scale[1] + (self.band_scale[0] - self.band_scale[1]) * small
        return (self.base.raw_scores(features) / self.base.temperature + bias) * scale

    def weights(self) -> dict[str, np.ndarray]:
        return {"band_bias": self.band_bias, "band_scale": self.band_scale,
                "band_tiles": np.asarray(self.tiles, np.int64),
                "base_temperature": np.asarray([self.base.temperature], np.float32),
                **{f"base.{k}": v for k, v in self.base.tensors().items()}}

    def tensors(self) -> dict[str, np.ndarray]:
        return self.weights()

    def map_arrays(self, fn) -> SizeBandHead:
        return replace(self, base=self.base.map_arrays(fn), band_bias=fn(self.band_bias), band_scale=fn(self.band_scale))

    def fits(self) -> bool:
        start, stop = self.tiles
        return (self.band_bias.shape == (2, self.base.n_classes) and self.band_scale.shape == (2,)
                and 0 < start < stop <= self.base.dim)

    @classmethod
    def from_tensors(cls, tensors: dict[str, np.ndarray], temperature: float) -> SizeBandHead:
        """Rebuild from `tensors()`: the base head from its `base.` tensors, whatever its type."""
        try:
            base_tensors = {k[5:]: v for k, v in tensors.items() if k.startswith("base.")}
            base = head_from_tensors(kind_of(base_tensors), base_tensors,
                                     float(np.asarray(tensors["base_temperature"]).reshape(-1)[0]))
            start, stop = (int(v) for v in tensors["band_tiles"])
            head = cls(base.mean, base.scale, temperature, base=base, tiles=(start, stop),
                       band_bias=np.asarray(tensors["band_bias"], np.float32),
                       band_scale=np.asarray(tensors["band_scale"], np.float32))
        except (KeyError, ValueError) as exc:
            raise ArtstyleError(f"size band head tensors are incomplete ({exc})") from None
        if not head.fits():
            raise ArtstyleError("size band head tensors have inconsistent shapes")
        return head


def fit_band_bias(logp: np.ndarray, y: np.ndarray, n_classes: int, l2: float = BIAS_L2) -> np.ndarray:
    """Per-class bias added to log-probabilities `logp` that minimises the class-balanced
    log-loss of labels `y`, plus `l2` |bias|^2."""
    counts = np.bincount(y, minlength=n_classes)
    weight = 1.0 / np.maximum(counts[y], MIN_CLASS_WEIGHT_COUNT)
    weight *= len(y) / weight.sum()
    logp = np.asarray(logp, np.float64)
    target = np.bincount(y, weights=weight, minlength=n_classes) / len(y)

    def loss(bias: np.ndarray) -> tuple[float, np.ndarray]:
        z = logp + bias
        z -= z.max(axis=1, keepdims=True)
        p = np.exp(z)
        total = p.sum(axis=1)
        value = np.mean(weight * (np.log(total) - z[np.arange(len(y)), y])) + l2 * bias @ bias
        grad = (weight[:, None] * p / total[:, None]).mean(axis=0) - target + 2 * l2 * bias
        return float(value), grad

    bias = minimize(loss, np.zeros(n_classes), jac=True, method="L-BFGS-B").x
    return (bias - bias.mean()).astype(np.float32)  # softmax ignores a common shift


def _small_band_scale(trained, small: np.ndarray, y: np.ndarray, sources: np.ndarray) -> float:
    """Inverse temperature of small pictures (`small`, per row), fitted on every small row
    scored out of fold, the size variants of full-size paintings among them, each source
    weighing the same: a web source's own copies must not set it for shrunk scans."""
    rows = np.flatnonzero(trained.out_of_fold_rows & small)
    return 1.0 / fit_temperature(trained.out_of_fold[rows], y[rows], source_weights(sources[rows]))


def fit_size_bands(trained, rows, tiles: tuple[int, int] | None, labels: list[str]):
    """`trained` (a `training.TrainedHead`) with a `SizeBandHead` when its held-out paintings
    hold at least MIN_BAND of each band; otherwise unchanged. `rows`: the `training.HeadRows`
    it was trained on; `tiles`: see `tile_columns` (None: the recipe has no sized tiles).
    The bias is chosen like a head: each fold's full-size paintings are corrected by a bias
    fitted on the other folds' (cross-fitting), and it is kept (fitted on them all) only
    when that raises their macro-F1; the held-out figures are the cross-fitted ones."""
    from .training import TrainedHead, held_out_summary

    if tiles is None or trained.held_out_proba is None:
        return trained
    y, folds, sources = rows.y, rows.folds, rows.weighting.sources
    small_rows = np.asarray(small_pictures(rows.x, tiles))
    held = np.flatnonzero(trained.held_out)
    small, y_held = small_rows[held], y[held]
    if small.sum() < MIN_BAND or (~small).sum() < MIN_BAND:
        return trained
    n_classes = trained.head.n_classes
    logp = np.log(np.clip(trained.held_out_proba, 1e-12, None))
    band = np.where(small, 0, 1)
    full = band == 1
    crossed = logp.copy()  # each fold's full-size paintings corrected by the bias of the other folds'
    fold_of = folds[held]
    for fold in np.unique(fold_of[full]):
        here, rest = full & (fold_of == fold), full & (fold_of != fold)
        crossed[here] += fit_band_bias(logp[rest], y_held[rest], n_classes) if rest.any() else 0.0
    f1 = {name: macro_f1(y_held[full], z[full].argmax(1), n_classes) for name, z in (("without", logp), ("with", crossed))}
    bias = np.zeros((2, n_classes), np.float32)
    corrected = logp
    if f1["with"] > f1["without"]:
        bias[1] = fit_band_bias(logp[full], y_held[full], n_classes)
        corrected = crossed
    scale = np.array([_small_band_scale(trained, small_rows, y, sources),
                      1.0 / fit_temperature(corrected[full], y_held[full])], np.float32)
    proba = softmax(corrected * scale[band][:, None])
    head = SizeBandHead(trained.head.mean, trained.head.scale, 1.0, base=trained.head, tiles=tiles,
                        band_bias=bias, band_scale=scale)
    abstention = Abstention.fit(proba, y_held)
    info = {**trained.info, "type": head.kind, "temperature": 1.0, "abstention": abstention.to_dict(),
            "held_out": held_out_summary(proba, y_held, abstention, labels),
            "size_bands": {
                "held_out_paintings": {BANDS[0]: int(small.sum()), BANDS[1]: int((~small).sum())},
                "temperature": {b: round(float(1 / s), 4) for b, s in zip(BANDS, scale)},
                "full_size_bias": {label: round(float(v), 3) for label, v in zip(labels, bias[1])} if bias.any() else None,
                "full_size_bias_macro_f1": {k: round(v, 4) for k, v in f1.items()},
                "held_out_before": {BANDS[b]: held_out_summary(trained.held_out_proba[band == b], y_held[band == b],
                                                               trained.abstention, labels) for b in (0, 1)},
                "held_out_after": {BANDS[b]: held_out_summary(proba[band == b], y_held[band == b], abstention, labels)
                                   for b in (0, 1)}}}
    after, before = info["size_bands"]["held_out_after"][BANDS[1]], info["size_bands"]["held_out_before"][BANDS[1]]
    log.info("size bands: a temperature per band%s (%d held-out full-size paintings: macro-F1 %.3f -> %.3f, "
             "ECE %.3f -> %.3f)", ", and a bias per movement for full-size pictures" if bias.any() else "",
             full.sum(), before["macro_f1"], after["macro_f1"], before["ece"], after["ece"])
    return TrainedHead(head, trained.head_kind, abstention, trained.detector, info, proba, trained.held_out)

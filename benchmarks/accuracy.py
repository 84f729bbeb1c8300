"""Accuracy benchmark: recipe x balancing x training data, on folds that keep artists apart.

    python benchmarks/accuracy.py ../shared/data/paintings ../shared/data/wikiart [--folds 3] [--json]

The first folder is the full-size collection, the others are extra data (WikiArt's small
copies). Artist-disjoint folds are drawn once over everything; for each fold and arm the
head is trained exactly as `artstyle train` trains it (size variants, balancing, head kind
and regularisation chosen by inner artist-disjoint folds, temperature), then scored:

  (i)   full-size paintings of the first folder's held-out artists,
  (ii)  the extra folders' held-out paintings, by the same model (all its movements),
  (iii) (i) with the scored paintings shrunk to a 224-px long side (as WikiArt's copies).

Each arm trains on the first folder alone ("paintings") and with the extra data
("+extra"), on the same folds, so the gain of adding data is a paired difference, and so is
each arm's gain over the first arm named (e.g. `--arms` naming the default, then the
texture, Lite2 or Lite0+Lite2 arms). Every figure comes with its standard error (binomial;
paired for differences) and the spread over folds. `--json` keeps each arm's right/wrong
per scored painting, so that runs with the same data and seed pair too. Also: per-movement
recall and precision of (i), ECE, and the painting detector's false alarms on held-out
paintings and on non-paintings drawn with matplotlib.
`benchmarks/painting_detector.py` measures the detector on real non-painting sources.

With --int8, the model trained on everything given is also scored with an int8 embedding
(`artstyle quantize`'s), calibrated per fold on that fold's training paintings: the same
head and detector, so top-1/top-3/ECE and the flag rates of fp32 and int8 are paired.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from artstyle import StyleClassifier
from artstyle.data.dataset import resized_key, scan_dataset
from artstyle.data.images import Resized
from artstyle.data.splits import make_folds
from artstyle.features.graph_cache import BundledGraph
from artstyle.features.int8 import DEFAULT_CALIBRATION, WEIGHT_RANGES, quantize_graph, resolve_weight_range
from artstyle.features.recipes import DEFAULT_BACKBONE, split_backbones
from artstyle.features.size_variants import SizeVariants
from artstyle.model.head import HEAD_KINDS
from artstyle.model.metrics import classification_metrics
from artstyle.model.quantize import calibration_views, stratified
from artstyle.model.size_bands import fit_size_bands, tile_columns
from artstyle.model.training import calibration_folds, head_rows, train_head

LITE2, FUSION = "efficientnet_lite2", f"{DEFAULT_BACKBONE}+efficientnet_lite2"
# (name, recipe, balance, size variant copies, backbone, size bands): the previous default,
# the new steps one by one, statistics of five maps instead of two, the default's steps on the
# larger network and on both networks together, then the full-size pictures' own correction
# (model/size_bands.py), and today's default on both networks
ARMS = (
    ("multicrop (0.1 default)", "multicrop", "class", 0, DEFAULT_BACKBONE, False),
    ("sized", "sized", "class", 0, DEFAULT_BACKBONE, False),
    ("sized + variants + breadth", "sized", "breadth", 2, DEFAULT_BACKBONE, False),
    ("sized+stats + variants + breadth", "sized+stats", "breadth", 2, DEFAULT_BACKBONE, False),
    ("sized+texture + variants + breadth", "sized+texture", "breadth", 2, DEFAULT_BACKBONE, False),
    ("lite2 sized+stats + variants + breadth", "sized+stats", "breadth", 2, LITE2, False),
    ("lite0+lite2 sized+stats + variants + breadth", "sized+stats", "breadth", 2, FUSION, False),
    ("sized+texture + variants + breadth + size bands", "sized+texture", "breadth", 2, DEFAULT_BACKBONE, True),
    ("lite0+lite2 sized+texture + variants + breadth + size bands", "sized+texture", "breadth", 2, FUSION, True),
)
SHRUNK_LONG_SIDE = 224  # (iii): WikiArt's copies have this long side


def evaluation_non_paintings(n: int = 60, seed: int = 7) -> list[Image.Image]:
    """Charts, tables, text slides, flat colour and noise, rendered with matplotlib/numpy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(seed)
    images = []
    for i in range(n):
        kind = i % 6
        if kind == 4:
            images.append(Image.new("RGB", (800, 600), tuple(int(v) for v in rng.integers(0, 256, 3))))
            continue
        if kind == 5:
            images.append(Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)))
            continue
        fig = plt.figure(figsize=(rng.uniform(5, 10), rng.uniform(4, 7)), dpi=100)
        ax = fig.add_subplot()
        if kind == 0:
            ax.bar(range(8), rng.random(8), color=plt.cm.tab10(rng.integers(10)))
        elif kind == 1:
            ax.plot(np.cumsum(rng.normal(size=(50, 3)), axis=0))
        elif kind == 2:
            ax.axis("off")
            ax.table(cellText=np.round(rng.random((12, 5)) * 100, 1).astype(str).tolist(), loc="center")
        else:
            ax.axis("off")
            fig.patch.set_facecolor(rng.random(3) * 0.3 + 0.7)
            ax.text(0.05, 0.9, "Quarterly review", fontsize=28, weight="bold", transform=ax.transAxes)
            for line in range(5):
                ax.text(0.08, 0.7 - 0.13 * line, f"- point {line + 1}: figures and next steps", fontsize=16, transform=ax.transAxes)
        ax.set_title(f"Figure {i}")
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png", facecolor=fig.get_facecolor())
        plt.close(fig)
        buffer.seek(0)
        images.append(Image.open(buffer).convert("RGB"))
    return images


def extraction_cost(clf: StyleClassifier, paths: list[Path]) -> float:
    """Cold ms/image with no cache, after a warm-up batch."""
    cold = StyleClassifier(clf.backbone, features=clf.features, cache_dir=False, show_progress=False)
    cold.extract(paths[:4])
    start = time.perf_counter()
    cold.extract(paths)
    return 1000 * (time.perf_counter() - start) / len(paths)


def shrunk(path: Path, size: tuple[int, int] | None) -> Resized:
    """`path` seen with a SHRUNK_LONG_SIDE long side (the short side in proportion)."""
    width, height = size or (SHRUNK_LONG_SIDE, SHRUNK_LONG_SIDE)
    return Resized(path, max(1, round(SHRUNK_LONG_SIDE * min(width, height) / max(width, height))))


def score(y: np.ndarray, proba: np.ndarray, labels: list[str], keys: list[str], folds: np.ndarray) -> dict:
    """Metrics of rows (identical images once), with the binomial standard error of top-1,
    top-3 and family top-1 (`data.families`) and the spread of top-1 over the folds."""
    m = classification_metrics(y, proba, labels, keys=keys)
    n = max(m["n_images"], 1)
    per_fold = [float((proba[folds == f].argmax(1) == y[folds == f]).mean()) for f in np.unique(folds)]
    return {"top1": m["accuracy"], "top1_se": float(np.sqrt(m["accuracy"] * (1 - m["accuracy"]) / n)),
            "top3": m["top3_accuracy"], "top3_se": float(np.sqrt(m["top3_accuracy"] * (1 - m["top3_accuracy"]) / n)),
            "family_top1": m["family_accuracy"],
            "family_top1_se": float(np.sqrt(m["family_accuracy"] * (1 - m["family_accuracy"]) / n)),
            "macro_f1": m["macro_f1"], "ece": m["ece"], "n": m["n_images"],
            "fold_spread": [round(v, 3) for v in per_fold], "per_class": m["per_class"]}


def paired(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """Mean of b - a over the same rows (1 right, 0 wrong) and its standard error."""
    d = b.astype(float) - a.astype(float)
    return float(d.mean()), float(d.std(ddof=1) / np.sqrt(len(d))) if len(d) > 1 else 0.0


def int8_classifier(recipe: str, cache_dir: Path | bool, calibration: list[Path],
                    backbone: str = DEFAULT_BACKBONE, weight_range: str = "auto", weights: Path | None = None,
                    ) -> StyleClassifier:
    """A classifier of `recipe` whose network runs as `artstyle quantize` writes it, calibrated on `calibration`."""
    clf = StyleClassifier(backbone, features=recipe, weights=weights, cache_dir=cache_dir, engine="onnx",
                          show_progress=False)
    (extractor,) = clf.feature_extractors
    backbone, stats = extractor.backbone, extractor.recipe.stats
    graph = quantize_graph(backbone.graph(stats), calibration_views(calibration, extractor, False), weight_range)
    backbone.use_graphs(BundledGraph(graph, stats, backbone.description(), precision="int8"))
    return clf


def run(args: argparse.Namespace) -> dict:
    dataset = scan_dataset(args.data, show_progress=False)
    records = list(dataset.records)
    paths = [dataset.abspath(r) for r in records]
    keys = [r.sha256 for r in records]
    labels = sorted(dataset.labels)
    y = np.array([labels.index(r.label) for r in records])
    first = Path(args.data[0]).resolve()  # the full-size collection; records are sorted by path, not by folder
    full = np.array([Path(p).resolve().is_relative_to(first) for p in paths])
    outer = make_folds(records, args.folds, "artist", seed=args.seed)
    held = outer >= 0
    print(f"{len(records)} paintings ({full.sum()} full-size), {len(labels)} movements, {args.folds} artist-disjoint "
          f"folds; scored: {(held & full).sum()} full-size, {(held & ~full).sum()} extra", flush=True)
    small = [shrunk(paths[i], records[i].size) for i in np.flatnonzero(full)]
    small_keys = [resized_key(keys[i], s.short_side) for i, s in zip(np.flatnonzero(full), small)]
    eval_negatives = evaluation_non_paintings()
    cost_sample = [paths[i] for i in np.random.default_rng(0).permutation(len(paths))[: args.cost_images]]
    results: dict = {"arms": [], "folds": args.folds, "seed": args.seed, "data": [str(d) for d in args.data]}
    for name, recipe, balance, copies, backbone, bands in args.arms:
        clf = StyleClassifier(backbone, features=recipe, cache_dir=args.cache_dir, show_progress=False, balance=balance)
        first = clf.feature_extractors[0]
        tiles = tile_columns(first.backbone.feature_dim, first.recipe.grid, first.recipe.sized) if bands else None
        x = clf.extract(paths, keys).features
        x_small = np.zeros_like(x)
        x_small[full] = clf.extract(small, small_keys).features
        variants = SizeVariants(copies) if copies else None
        plan = variants.plan(paths, keys, [r.short_side for r in records]) if variants else None
        x_variants = clf.extract(plan.images, plan.keys).features if plan else None
        negatives = clf.non_painting_features()
        x_neg = clf.extract(eval_negatives).features
        ms = extraction_cost(clf, cost_sample)
        for data in ("paintings", "+extra") if len(args.data) > 1 else ("paintings",):
            if bands and data == "paintings":  # one size band: the same model as the arm without it
                continue
            usable = np.ones(len(y), bool) if data == "+extra" else full
            proba = np.zeros((len(y), len(labels)))
            proba_small = np.zeros_like(proba)
            flags = {"full-size paintings": np.zeros(len(y), bool), "extra paintings": np.zeros(len(y), bool)}
            neg_flags, kinds = [], []
            int8 = args.int8 and data == ("+extra" if len(args.data) > 1 else "paintings")
            proba8, proba8_small = np.zeros_like(proba), np.zeros_like(proba)
            flags8, neg_flags8 = np.zeros(len(y), bool), []
            for fold in range(args.folds):
                train, test = usable & (outer != fold), outer == fold
                rows_train = np.flatnonzero(train)
                folds, _ = calibration_folds([records[i] for i in rows_train], seed=args.seed)
                position = np.full(len(y), -1)
                position[rows_train] = np.arange(len(rows_train))
                take = train[plan.parents] if plan else None
                rows = head_rows(x[train], y[train], folds, [records[i].source for i in rows_train],
                                 [records[i].artist for i in rows_train], balance,
                                 [records[i].short_side for i in rows_train],
                                 plan.select(take, position) if plan else None, x_variants[take] if plan else None)
                trained = fit_size_bands(
                    train_head(rows.x, rows.y, len(labels), rows.folds, kinds=args.heads, negatives=negatives,
                               labels=labels, seed=args.seed, weighting=rows.weighting, scored=rows.scored,
                               groups=rows.groups), rows, tiles, labels)
                kinds.append(trained.head_kind)
                proba[test] = trained.head.predict_proba(x[test])
                proba_small[test & full] = trained.head.predict_proba(x_small[test & full])
                painting = trained.detector.is_painting(x[test])
                flags["full-size paintings"][test] = ~painting & full[test]
                flags["extra paintings"][test] = ~painting & ~full[test]
                neg_flags.append(~trained.detector.is_painting(x_neg))
                if int8:
                    calibration = stratified([records[i] for i in rows_train], DEFAULT_CALIBRATION, args.seed)
                    q = int8_classifier(recipe, args.cache_dir, [dataset.abspath(r) for r in calibration], backbone,
                                        args.weight_range)
                    rows_test = np.flatnonzero(test)
                    x8 = q.extract([paths[i] for i in rows_test], [keys[i] for i in rows_test]).features
                    proba8[test] = trained.head.predict_proba(x8)
                    flags8[test] = ~trained.detector.is_painting(x8)
                    small_test = np.flatnonzero(test[full])
                    proba8_small[np.flatnonzero(full)[small_test]] = trained.head.predict_proba(
                        q.extract([small[j] for j in small_test], [small_keys[j] for j in small_test]).features)
                    neg_flags8.append(~trained.detector.is_painting(q.extract(eval_negatives).features))
            arm = {"arm": name, "backbone": backbone, "recipe": recipe, "balance": balance, "size_variants": copies, "data": data,
                   "heads_chosen": kinds, "ms_per_image": ms}
            for score_name, mask, p in (("i", held & full, proba), ("ii", held & ~full, proba),
                                        ("iii", held & full, proba_small)):
                if mask.any():
                    arm[score_name] = score(y[mask], p[mask], labels, [keys[i] for i in np.flatnonzero(mask)], outer[mask])
                    arm[score_name + "_right"] = (p[mask].argmax(1) == y[mask]).tolist()
            arm["flagged"] = {"full-size paintings": float(flags["full-size paintings"][held & full].mean()),
                              "extra paintings": float(flags["extra paintings"][held & ~full].mean()) if (held & ~full).any() else None,
                              "matplotlib non-paintings": float(np.mean(neg_flags))}
            if int8:
                arm["int8"] = _int8_scores(y, labels, keys, outer, held, full, (proba, proba_small), (proba8, proba8_small),
                                           flags, flags8, np.mean(neg_flags), np.mean(neg_flags8))
                arm["int8"]["weight_range"] = resolve_weight_range(args.weight_range)
            results["arms"].append(arm)
            print(_format(arm), flush=True)
    _paired_gains(results)
    return results


def _int8_scores(y, labels, keys, outer, held, full, fp32, int8, flags, flags8, neg_rate, neg_rate8) -> dict:
    """Scores (i)-(iii) of the int8 embedding beside fp32's, paired on the same paintings."""
    scores = {}
    for name, mask, a, b in (("i", held & full, fp32[0], int8[0]), ("ii", held & ~full, fp32[0], int8[0]),
                             ("iii", held & full, fp32[1], int8[1])):
        if not mask.any():
            continue
        s8 = score(y[mask], b[mask], labels, [keys[i] for i in np.flatnonzero(mask)], outer[mask])
        s32 = score(y[mask], a[mask], labels, [keys[i] for i in np.flatnonzero(mask)], outer[mask])
        gain, se = paired(a[mask].argmax(1) == y[mask], b[mask].argmax(1) == y[mask])
        scores[name] = {**{k: s8[k] for k in ("top1", "top1_se", "top3", "ece", "n")},
                        "top1_change": gain, "top1_change_se": se, "top3_change": s8["top3"] - s32["top3"],
                        "ece_change": s8["ece"] - s32["ece"],
                        "same_top1": float(np.mean(a[mask].argmax(1) == b[mask].argmax(1))),
                        "max_abs_diff": float(np.abs(a[mask] - b[mask]).max())}
        print(f"  int8 ({name}) top-1 {s8['top1']:.3f} ({gain * 100:+.1f} +- {se * 100:.1f} points), top-3 "
              f"{scores[name]['top3_change'] * 100:+.1f}, ECE {scores[name]['ece_change']:+.3f}, same top-1 as fp32 "
              f"{scores[name]['same_top1']:.1%}", flush=True)
    fp32_flags = flags["full-size paintings"] | flags["extra paintings"]
    scores["flagged"] = {"full-size paintings": [float(fp32_flags[held & full].mean()), float(flags8[held & full].mean())],
                         "extra paintings": [float(fp32_flags[held & ~full].mean()), float(flags8[held & ~full].mean())]
                         if (held & ~full).any() else None,
                         "matplotlib non-paintings": [float(neg_rate), float(neg_rate8)]}
    print("  int8 flagged (fp32 -> int8): " + ", ".join(f"{k} {v[0]:.1%} -> {v[1]:.1%}"
                                                         for k, v in scores["flagged"].items() if v), flush=True)
    return scores


def _paired_gains(results: dict) -> None:
    """On the same paintings: (i) with the extra data minus (i) without it, per arm; and
    each arm minus the first arm named, per training data and score."""
    by = {(a["arm"], a["data"]): a for a in results["arms"]}
    first = results["arms"][0]["arm"]
    gains = {}

    def gain(label: str, base: dict, arm: dict, scores: tuple[str, ...]) -> None:
        for s in scores:
            if s + "_right" in base and s + "_right" in arm:
                mean, se = paired(np.array(base[s + "_right"]), np.array(arm[s + "_right"]))
                gains[f"{label}: ({s})"] = {"gain": mean, "se": se}
                print(f"{label} ({s}) {mean:+.3f} +- {se:.3f}", flush=True)

    for (name, data), arm in by.items():
        if data == "+extra" and (name, "paintings") in by:
            gain(f"{name}: +extra - paintings", by[(name, "paintings")], arm, ("i", "iii"))
        if name != first and (first, data) in by:
            gain(f"{name} - {first}, {data}", by[(first, data)], arm, ("i", "ii", "iii"))
        if data == "+extra" and (first, "paintings") in by:
            base = by[(first, "paintings")]
            gain(f"{name}, +extra - {first}, paintings", base, arm, ("i", "iii"))
            results.setdefault("recall_change", {})[name] = recall_change(base["i"], arm["i"])
    results["gains"] = gains


def recall_change(base: dict, arm: dict, min_support: int = 10) -> dict[str, list]:
    """Per movement with at least `min_support` scored paintings: recall of `base`, of
    `arm` and the change; printed, largest loss first."""
    rows = {label: [c["recall"], arm["per_class"][label]["recall"], arm["per_class"][label]["recall"] - c["recall"]]
            for label, c in base["per_class"].items() if c["support"] >= min_support}
    rows = dict(sorted(rows.items(), key=lambda kv: kv[1][2]))
    print(f"  recall (i), movements with >= {min_support} paintings: "
          + ", ".join(f"{k} {a:.2f}->{b:.2f}" for k, (a, b, _) in rows.items()), flush=True)
    return rows


def _format(arm: dict) -> str:
    parts = [f"{arm['arm']:36s} {arm['data']:9s}"]
    for s in ("i", "ii", "iii"):
        if s in arm:
            m = arm[s]
            parts.append(f"({s}) {m['top1']:.3f}+-{m['top1_se']:.3f} top3 {m['top3']:.3f} family "
                         f"{m['family_top1']:.3f}+-{m['family_top1_se']:.3f} ECE {m['ece']:.3f}")
    flagged = arm["flagged"]
    parts.append(f"flagged: full {flagged['full-size paintings']:.1%}"
                 + (f", extra {flagged['extra paintings']:.1%}" if flagged["extra paintings"] is not None else "")
                 + f", non-paintings {flagged['matplotlib non-paintings']:.1%}  {arm['ms_per_image']:.0f} ms/img")
    return "  ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path, nargs="+", help="the full-size collection, then any extra data")
    parser.add_argument("--folds", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heads", default=",".join(HEAD_KINDS), help="head kinds the inner folds choose among")
    parser.add_argument("--arms", default=",".join(a[0] for a in (ARMS[4], ARMS[7])),
                        help="comma-separated arm names, the first the baseline of the others (see ARMS; "
                        "the other arms run when named)")
    parser.add_argument("--cost-images", type=int, default=64, help="images timed for extraction cost")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "artstyle-bench-cache")
    parser.add_argument("--int8", action="store_true", help="also score the int8 embedding (see above)")
    parser.add_argument("--weight-range", choices=WEIGHT_RANGES, default="auto",
                        help="int8 weights as `artstyle quantize --weight-range` writes them (auto: this CPU's best)")
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    args.heads = tuple(args.heads.split(","))
    wanted = args.arms.split(",")
    unknown = set(wanted) - {a[0] for a in ARMS}
    if unknown:
        parser.error(f"unknown arms {sorted(unknown)}; see ARMS")
    args.arms = [next(a for a in ARMS if a[0] == w) for w in dict.fromkeys(wanted)]
    if args.int8 and any(len(split_backbones(a[4])) > 1 for a in args.arms):
        parser.error("--int8 quantizes one network: leave out the Lite0+Lite2 arm")
    results = run(args)
    if args.json:  # with each arm's right/wrong per scored painting, so that runs can be paired later
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

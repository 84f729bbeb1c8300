"""Accuracy benchmark: every feature recipe x head, by cross-validation that keeps artists apart.

    python benchmarks/accuracy.py ../shared/data/paintings [--split artist] [--folds 5] [--json]

For each outer fold the model is trained exactly as `artstyle train` does (head chosen,
calibrated and thresholded by inner artist-disjoint folds), then scored on the held-out
artists. Rows: recipe x backbone(s) x head ("auto" = the head the inner folds choose).
Also measured: cold extraction cost (ms/image, no cache) and the painting detector on
held-out paintings and on non-paintings drawn here with matplotlib, a different
renderer from the generator the detector trains on (and scikit-image's sample photos
when installed, reported apart). `benchmarks/painting_detector.py` measures the detector
on real non-painting sources it never saw.
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
from artstyle.data.dataset import scan_dataset
from artstyle.data.splits import make_folds
from artstyle.model.head import HEAD_KINDS
from artstyle.model.metrics import classification_metrics
from artstyle.model.training import calibration_folds, train_head

CONFIGS = (
    ("efficientnet_lite0", "global"),
    ("efficientnet_lite0", "multicrop"),
    ("efficientnet_lite0", "multicrop+stats"),
    ("efficientnet_lite2", "global"),
    ("efficientnet_lite2", "multicrop"),
    ("efficientnet_lite0+efficientnet_lite2", "multicrop"),
)


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


def sample_photos() -> list[Image.Image]:
    try:
        import skimage.data as data
    except ImportError:
        return []
    names = ("astronaut", "cat", "chelsea", "coffee", "rocket", "camera", "horse", "coins", "moon", "page", "text", "clock")
    return [Image.fromarray(getattr(data, n)()).convert("RGB") for n in names]


def extraction_cost(backbone: str, recipe: str, paths: list[Path]) -> float:
    """Cold ms/image with no cache, after a warm-up batch."""
    clf = StyleClassifier(backbone, features=recipe, cache_dir=False, show_progress=False)
    clf.extract(paths[:4])
    start = time.perf_counter()
    clf.extract(paths)
    return 1000 * (time.perf_counter() - start) / len(paths)


def run(args: argparse.Namespace) -> list[dict]:
    dataset = scan_dataset(args.data, show_progress=False)
    records = list(dataset.records)
    paths = [dataset.abspath(r) for r in records]
    labels = sorted(dataset.labels)
    y = np.array([labels.index(r.label) for r in records])
    outer = make_folds(records, args.folds, args.split, seed=args.seed)
    scored = outer >= 0
    untested = sorted({r.label for r, f in zip(records, outer) if f < 0})
    print(f"{len(records)} paintings, {len(labels)} movements, {args.folds} {args.split}-disjoint folds; "
          f"{scored.sum()} scored (untested, too few artists: {', '.join(untested) or 'none'})", flush=True)
    eval_negatives, photos = evaluation_non_paintings(), sample_photos()
    cost_sample = [paths[i] for i in np.random.default_rng(0).permutation(len(paths))[: args.cost_images]]
    rows = []
    for backbone, recipe in args.configs:
        clf = StyleClassifier(backbone, features=recipe, cache_dir=args.cache_dir, show_progress=False)
        x = clf.extract(paths, [r.sha256 for r in records]).features
        negatives = clf.non_painting_features()  # real (shipped) and generated, as `artstyle train` uses
        x_eval_neg = clf.extract(eval_negatives).features
        x_photos = clf.extract(photos).features if photos else None
        ms = extraction_cost(backbone, recipe, cost_sample)
        proba = {kind: np.zeros((len(y), len(labels))) for kind in (*args.heads, "auto")}
        flagged = {"paintings": np.zeros(len(y), bool), "non_paintings": [], "photos": []}
        uncertain = np.zeros(len(y), bool)
        for fold in range(args.folds):
            test, train = outer == fold, outer != fold
            folds, _ = calibration_folds([records[i] for i in np.flatnonzero(train)], seed=args.seed)
            best = None
            detector = None
            for kind in args.heads:
                trained = train_head(x[train], y[train], len(labels), folds, kinds=(kind,),
                                     negatives=negatives if detector is None else None, labels=labels, seed=args.seed)
                detector = detector or trained.detector
                proba[kind][test] = trained.head.predict_proba(x[test])
                inner = max(trained.info["held_out_macro_f1"][kind].values())
                if best is None or inner > best[0]:
                    best = (inner, kind, trained)
            _, kind, trained = best
            proba["auto"][test] = proba[kind][test]
            uncertain[test] = trained.abstention.flags(proba[kind][test])[0]
            flagged["paintings"][test] = ~detector.is_painting(x[test])
            flagged["non_paintings"].append(~detector.is_painting(x_eval_neg))
            if x_photos is not None:
                flagged["photos"].append(~detector.is_painting(x_photos))
        for head in (*args.heads, "auto"):
            m = classification_metrics(y[scored], proba[head][scored], labels,
                                       keys=[records[i].sha256 for i in np.flatnonzero(scored)])
            row = {
                "backbone": backbone, "recipe": recipe, "head": head, "images": int(scored.sum()),
                "top1": m["accuracy"], "top3": m["top3_accuracy"], "macro_f1": m["macro_f1"], "ece": m["ece"],
                "ms_per_image": ms,
            }
            if head == "auto":
                row.update(
                    per_class={k: v["f1"] for k, v in m["per_class"].items()},
                    uncertain_rate=float(uncertain[scored].mean()),
                    accuracy_when_certain=float((proba["auto"][scored].argmax(1) == y[scored])[~uncertain[scored]].mean()),
                    paintings_flagged=float(flagged["paintings"][scored].mean()),
                    non_paintings_flagged=float(np.mean(flagged["non_paintings"])),
                    photos_flagged=float(np.mean(flagged["photos"])) if flagged["photos"] else None,
                )
            rows.append(row)
            print(_format_row(row), flush=True)
    return rows


def _format_row(row: dict) -> str:
    text = (f"{row['backbone']:40s} {row['recipe']:16s} {row['head']:7s} top1 {row['top1']:.3f}  top3 {row['top3']:.3f}  "
            f"F1 {row['macro_f1']:.3f}  ECE {row['ece']:.3f}  {row['ms_per_image']:6.1f} ms/img")
    if row["head"] == "auto":
        text += (f"  | unsure {row['uncertain_rate']:.0%} (acc when sure {row['accuracy_when_certain']:.2f})"
                 f"  flagged: paintings {row['paintings_flagged']:.1%}, non-paintings {row['non_paintings_flagged']:.1%}")
        if row["photos_flagged"] is not None:
            text += f", photos {row['photos_flagged']:.1%}"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--split", choices=("artist", "stratified"), default="artist")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--heads", default=",".join(HEAD_KINDS), help="comma-separated head kinds")
    parser.add_argument("--configs", default=",".join(f"{b}:{r}" for b, r in CONFIGS),
                        help="comma-separated BACKBONE:RECIPE pairs")
    parser.add_argument("--cost-images", type=int, default=64, help="images timed for extraction cost")
    parser.add_argument("--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "artstyle-bench-cache")
    parser.add_argument("--json", action="store_true", help="print the rows as JSON at the end")
    args = parser.parse_args()
    args.heads = tuple(args.heads.split(","))
    args.configs = [tuple(c.split(":")) for c in args.configs.split(",")]
    rows = run(args)
    if args.json:
        print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()

"""How well does "not a painting" generalise to kinds of images it never saw?

    python benchmarks/painting_detector.py ../shared/data/paintings [../shared/data/wikiart ...] [--backbone efficientnet_lite0]

Leave-one-source-out over the non-painting sources that ship with artstyle (ImageNet
samples, BSDS photos, Vega-Lite charts, scanned receipts) and the generated ones: the
detector is fitted on the paintings (artist-disjoint folds set its threshold, as in
training, in every group of painting folder x size band with enough paintings) against
every other source, then scored on the held-out source. Prints the share of each
held-out source flagged, the share of held-out paintings flagged in each group (small
WikiArt copies beside full-size scans), how often the named kind is right, and the time
the detector adds to a prediction.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from artstyle import StyleClassifier
from artstyle.data.dataset import scan_dataset
from artstyle.features.recipes import DEFAULT_RECIPE
from artstyle.model.metrics import size_band
from artstyle.model.negatives import GENERATED_KIND, NOT_PAINTING_KINDS, non_paintings, shipped_negatives
from artstyle.model.painting import fit_painting_detector
from artstyle.model.training import calibration_folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paintings", nargs="+", help="painting folders (<movement>/<artist>/<image>), merged")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--features", default=DEFAULT_RECIPE)
    parser.add_argument("--generated", type=int, default=120)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    clf = StyleClassifier(args.backbone, features=args.features, show_progress=False)
    (extractor,) = clf.feature_extractors
    shipped = shipped_negatives(extractor.backbone.name, extractor.backbone.weights_id)
    if shipped is None:
        raise SystemExit(f"no shipped non-paintings for {args.backbone}: run scripts/build_negatives.py first")
    dataset = scan_dataset(args.paintings, show_progress=False)
    records = list(dataset.records)
    paintings = clf.extract([dataset.abspath(r) for r in records], [r.sha256 for r in records]).features
    cold = StyleClassifier(args.backbone, features=args.features, cache_dir=False, show_progress=False)
    sample = [dataset.abspath(r) for r in records[:: max(1, len(records) // 24)]]
    cold.extract(sample[:2])  # warm-up: engine built
    start = time.perf_counter()
    cold.extract(sample)
    extract_s = (time.perf_counter() - start) / len(sample)  # cold: decode + network, no cache
    folds, _ = calibration_folds(records)
    groups = np.array([f"{r.source}|{size_band(r.short_side)}" for r in records], dtype=object)
    columns = np.arange(extractor.backbone.feature_dim)
    generated = non_paintings(args.generated, seed=0)
    gen_features = clf.extract([img for _, img in generated], None).features[:, columns]
    gen_kinds = np.array([GENERATED_KIND.get(kind, -1) for kind, _ in generated])

    negatives = np.concatenate([gen_features, shipped.features])
    kinds = np.concatenate([gen_kinds, shipped.kind])
    sources = np.concatenate([np.full(len(gen_features), -1), shipped.source])
    names = {-1: "generated (slides, charts, tables, screenshots, pages, blank)", **dict(enumerate(shipped.sources))}
    rows = []
    for source, name in names.items():
        held = sources == source
        detector, info = fit_painting_detector(paintings, folds, negatives[~held], columns=columns,
                                               negative_kinds=kinds[~held], groups=groups)
        rows_held = _widen_rows(negatives[held], columns, paintings.shape[1])
        flagged = ~detector.is_painting(rows_held)
        guessed = detector.kinds(rows_held)
        right = [g == NOT_PAINTING_KINDS[k] for g, k, f in zip(guessed, kinds[held], flagged) if k >= 0 and f]
        rows.append({
            "held_out_source": name, "n": int(held.sum()),
            "flagged": float(flagged.mean()),
            "kind_right": float(np.mean(right)) if right else None,
            "paintings_flagged": info.get("held_out_paintings_flagged"),
        })
    detector, info = fit_painting_detector(paintings, folds, negatives, columns=columns, negative_kinds=kinds,
                                           groups=groups)
    by_group = info["held_out_paintings_flagged_by_group"]
    start = time.perf_counter()
    for _ in range(100):
        detector.is_painting(paintings), detector.kinds(paintings)
    detector_s = (time.perf_counter() - start) / 100 / len(paintings)
    result = {"backbone": args.backbone, "features": args.features, "paintings": len(records), "sources": rows,
              "all_sources_paintings_flagged": info["held_out_paintings_flagged"],
              "paintings_flagged_by_group": by_group,
              "detector_ms_per_image": detector_s * 1e3, "extract_ms_per_image": extract_s * 1e3,
              "time_added": detector_s / extract_s}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.backbone} {args.features}, {len(records)} paintings, artist-disjoint folds")
    print(f"{'held-out source':<64} {'n':>5} {'flagged':>8} {'kind right':>10} {'paintings flagged':>18}")
    for r in rows:
        kind = f"{r['kind_right']:.1%}" if r["kind_right"] is not None else "-"
        print(f"{r['held_out_source']:<64} {r['n']:>5} {r['flagged']:>8.1%} {kind:>10} {r['paintings_flagged']:>18.1%}")
    print(f"all sources in training: held-out paintings flagged {info['held_out_paintings_flagged']:.1%}: "
          + ", ".join(f"{g} {rate:.1%}" for g, rate in by_group.items()))
    print(f"detector {detector_s * 1e3:.3f} ms/image vs extraction {extract_s * 1e3:.1f} ms/image "
          f"(+{detector_s / extract_s:.2%} predict time)")


def _widen_rows(rows: np.ndarray, columns: np.ndarray, dim: int) -> np.ndarray:
    full = np.zeros((len(rows), dim), np.float32)
    full[:, columns] = rows
    return full


if __name__ == "__main__":
    main()

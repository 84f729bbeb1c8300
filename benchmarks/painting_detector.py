"""How well does "not a painting" generalise to kinds of images it never saw?

    python benchmarks/painting_detector.py ../shared/data/paintings [../shared/data/wikiart ...] [--backbone efficientnet_lite0]

Leave-one-source-out over the non-painting sources that ship with artstyle (eight photo
sources: ImageNet samples, BSDS scenes, shop, clothes, pet, sky, night and satellite
photos; Vega-Lite charts, scanned receipts) and the generated ones: the detector is
fitted exactly as `artstyle train` fits it (every source weighing the same, artist-disjoint
folds setting its threshold in every group of painting folder x size band with enough
paintings) against every other source, then scored on the held-out source. Prints the share of each
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
from artstyle.model.negatives import NOT_PAINTING_KINDS
from artstyle.model.painting import fit_painting_detector
from artstyle.model.training import calibration_folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paintings", nargs="+", help="painting folders (<movement>/<artist>/<image>), merged")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--features", default=DEFAULT_RECIPE)
    parser.add_argument("--generated", type=int, default=120)
    parser.add_argument("--global-only", action="store_true",
                        help="read the global view's embedding only, not the texture statistics too")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    clf = StyleClassifier(args.backbone, features=args.features, negatives=args.generated, show_progress=False)
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
    known = clf.non_painting_features()  # what `artstyle train` gives the detector
    if known.info["real_negatives"] is None:
        raise SystemExit(f"no real non-paintings for {args.backbone}: run scripts/build_negatives.py first")
    negatives, kinds, sources, columns = known.features, known.kinds, known.sources, known.columns
    if args.global_only:  # the arm of earlier rounds: the global view's embedding alone
        (extractor,) = clf.feature_extractors
        keep = columns < extractor.backbone.feature_dim
        negatives, columns = negatives[:, keep], columns[keep]
        known.info["columns"] = "global view"
    rows = []
    for name in np.unique(sources):
        held = sources == name
        detector, info = fit_painting_detector(paintings, folds, negatives[~held], columns=columns,
                                               negative_kinds=kinds[~held], negative_sources=sources[~held],
                                               groups=groups)
        rows_held = _widen_rows(negatives[held], columns, paintings.shape[1])
        flagged = ~detector.is_painting(rows_held)
        guessed = detector.kinds(rows_held)
        right = [g == NOT_PAINTING_KINDS[k] for g, k, f in zip(guessed, kinds[held], flagged) if k >= 0 and f]
        rows.append({
            "held_out_source": str(name), "n": int(held.sum()),
            "flagged": float(flagged.mean()),
            "kind_right": float(np.mean(right)) if right else None,
            "paintings_flagged": info.get("held_out_paintings_flagged_by_group"),
        })
    detector, info = fit_painting_detector(paintings, folds, negatives, columns=columns, negative_kinds=kinds,
                                           negative_sources=sources, groups=groups)
    by_group = info["held_out_paintings_flagged_by_group"]
    start = time.perf_counter()
    for _ in range(100):
        detector.is_painting(paintings), detector.kinds(paintings)
    detector_s = (time.perf_counter() - start) / 100 / len(paintings)
    result = {"backbone": args.backbone, "features": args.features, "paintings": len(records), "sources": rows,
              "columns": known.info["columns"],
              "all_sources_paintings_flagged": info["held_out_paintings_flagged"],
              "paintings_flagged_by_group": by_group,
              "detector_ms_per_image": detector_s * 1e3, "extract_ms_per_image": extract_s * 1e3,
              "time_added": detector_s / extract_s}
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(f"{args.backbone} {args.features} ({known.info['columns']}), {len(records)} paintings, artist-disjoint folds")
    print(f"{'held-out source':<48} {'n':>5} {'flagged':>8} {'kind right':>10}  paintings flagged (per group)")
    for r in rows:
        kind = f"{r['kind_right']:.1%}" if r["kind_right"] is not None else "-"
        flags = ", ".join(f"{g.split('|')[0]} {g.split('|')[1].split(' (')[0]} {v:.1%}"
                          for g, v in r["paintings_flagged"].items())
        print(f"{r['held_out_source']:<48} {r['n']:>5} {r['flagged']:>8.1%} {kind:>10}  {flags}")
    photos = [r["flagged"] for r in rows if r["held_out_source"] not in ("generated",)]
    print(f"held-out sources flagged: min {min(photos):.1%}, mean {np.mean(photos):.1%} (target: each >= 95 %)")
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

"""Faithfulness of `artstyle explain`'s heat-maps: the deletion test.

    python benchmarks/explain.py DATA [--model M] [--every 3] [--fraction 0.2] [--json FILE]

For every `--every`-th painting under DATA (a painting tree or any folder of images), the
heat-map of the predicted movement is computed, then the hottest `--fraction` of its cells
(of the centre square the model sees) are blurred away, and separately as many random
cells (5 draws). A faithful map loses more of the movement's probability to the first.
Prints both mean drops, their ratio and how often the hottest cells cost more (and the
same for the movement's score before the softmax, which does not saturate); with the
default model on the shared paintings these are paintings it was trained on (it says
what drives the model's answers, not how right they are).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from artstyle import StyleClassifier, default_model_path, load_image
from artstyle.data.dataset import find_images
from artstyle.model.explain import deletion_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", type=Path, default=default_model_path())
    parser.add_argument("--every", type=int, default=3, help="take every n-th image (sorted by path)")
    parser.add_argument("--fraction", type=float, default=0.2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    clf = StyleClassifier.load(args.model, cache_dir=False, show_progress=False)
    paths = find_images(args.data)[:: args.every]
    rows, start = [], time.perf_counter()
    for path in paths:
        d = deletion_test(clf, load_image(path, min_side=max(e.preprocessing.min_side for e in clf.feature_extractors)),
                          fraction=args.fraction)
        rows.append((d.original, d.hottest_removed, d.random_removed,
                     d.original_score, d.hottest_removed_score, d.random_removed_score))
    seconds = time.perf_counter() - start
    r = np.array(rows)
    hot, random = r[:, 0] - r[:, 1], r[:, 0] - r[:, 2]
    hot_score, random_score = r[:, 3] - r[:, 4], r[:, 3] - r[:, 5]
    results = {
        "images": len(r), "fraction": args.fraction, "model": str(args.model),
        "probability": round(float(r[:, 0].mean()), 4),
        "drop_hottest": round(float(hot.mean()), 4), "drop_random": round(float(random.mean()), 4),
        "ratio": round(float(hot.mean() / random.mean()), 3) if random.mean() > 0 else None,
        "hottest_costs_more": round(float((hot > random).mean()), 3),
        "score_drop_hottest": round(float(hot_score.mean()), 4), "score_drop_random": round(float(random_score.mean()), 4),
        "hottest_costs_more_score": round(float((hot_score > random_score).mean()), 3),
        "seconds_per_image": round(seconds / max(1, len(r)), 3),
    }
    print(f"{results['images']} images, {args.fraction:.0%} of the cells removed; predicted movement's probability "
          f"{results['probability']:.3f}")
    print(f"  drop, hottest cells removed: {results['drop_hottest']:.3f}")
    print(f"  drop, random cells removed:  {results['drop_random']:.3f}  (mean of 5 draws)")
    print(f"  ratio {results['ratio']}; the hottest cost more on {results['hottest_costs_more']:.0%} of images")
    print(f"  score (before the softmax) drop: hottest {results['score_drop_hottest']:.3f}, random "
          f"{results['score_drop_random']:.3f}; the hottest cost more on {results['hottest_costs_more_score']:.0%}")
    print(f"  {results['seconds_per_image']} s per image (map + 6 predictions)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

"""Speed and recall of `artstyle similar`'s index, on generated feature vectors.

    python benchmarks/similar.py [--n 18000] [--dim 3840] [--large 1000000] [--json FILE]

Exact: an index of Pandora18k's size (`--n`) built from vectors as long as the default
recipe's (`--dim`, Lite0 multicrop), then single queries one at a time (projection and
search), median ms; target <= 20 ms on 2 cores. Approximate: `--large` vectors (256 long,
the index's own size, so that a million fit in memory) with the faiss HNSW graph built as
at train time; query time and recall@5 against exact search on 500 new vectors; target
recall@5 >= 0.95. Vectors are movements x artists clusters with noise, like paintings'
features: near their artist, nearer their movement than others.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time
from pathlib import Path

import numpy as np

from artstyle.model.similar import SimilarityIndex


def generated(n: int, dim: int, seed: int, movements: int = 18, artists: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """(n database vectors, 500 new query vectors) from the same clusters."""
    rng = np.random.default_rng(seed)
    movement = rng.normal(size=(movements, dim)).astype(np.float32)
    artist = movement[rng.integers(movements, size=artists)] + 0.8 * rng.normal(size=(artists, dim)).astype(np.float32)

    def draw(k: int) -> np.ndarray:
        out = np.empty((k, dim), np.float32)
        for start in range(0, k, 100_000):  # bounded temporaries
            m = min(100_000, k - start)
            out[start:start + m] = artist[rng.integers(artists, size=m)] + rng.normal(size=(m, dim)).astype(np.float32)
        return out

    return draw(n), draw(500)


def rows(n: int) -> list[dict]:
    return [{"movement": "m", "artist": "a", "file": f"{i}.jpg", "sha256": ""} for i in range(n)]


def single_query_ms(index: SimilarityIndex, queries: np.ndarray, exact: bool = False) -> float:
    times = []
    for q in queries[:200]:
        start = time.perf_counter()
        index.search(q[None], 5, exact=exact)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=18_000)
    parser.add_argument("--dim", type=int, default=3840)
    parser.add_argument("--large", type=int, default=1_000_000, help="vectors for the approximate index (0: skip)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results: dict = {}

    x, queries = generated(args.n, args.dim, seed=0)
    start = time.perf_counter()
    index = SimilarityIndex.build(x, rows(args.n), ann=False)
    built = time.perf_counter() - start
    ms = single_query_ms(index, queries)
    stored = len(index.to_bytes()[0])
    results["exact"] = {"vectors": args.n, "input_dim": args.dim, "index_dim": int(index.vectors.shape[1]),
                        "build_s": round(built, 2), "query_ms": round(ms, 3), "stored_mb": round(stored / 1e6, 1)}
    print(f"exact, {args.n} vectors of {args.dim}: built in {built:.1f} s, {stored / 1e6:.1f} MB stored; "
          f"one query {ms:.2f} ms (target <= 20 ms)", flush=True)
    del x, index

    if args.large:
        x, queries = generated(args.large, 256, seed=1)
        start = time.perf_counter()
        index = SimilarityIndex.build(x, rows(args.large), ann=True)
        built = time.perf_counter() - start
        del x
        ann_ms, exact_ms = single_query_ms(index, queries), single_query_ms(index, queries[:50], exact=True)
        _, found = index.search(queries, 5)
        _, truth = index.search(queries, 5, exact=True)
        recall = float(np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, truth)]))
        results["approximate"] = {"vectors": args.large, "build_s": round(built, 1), "query_ms": round(ann_ms, 3),
                                  "exact_query_ms": round(exact_ms, 2), "recall_at_5": round(recall, 4)}
        print(f"approximate (faiss HNSW), {args.large} vectors: built in {built:.0f} s; one query {ann_ms:.2f} ms "
              f"(exact search: {exact_ms:.1f} ms, {exact_ms / ann_ms:.0f}x slower); recall@5 {recall:.4f} "
              f"(target >= 0.95)", flush=True)
    results["peak_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
    print(f"peak RSS {results['peak_rss_mb']} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

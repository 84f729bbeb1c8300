"""Where `train`, `evaluate`, `predict` and `check` spend time and memory as a collection grows.

    python benchmarks/scale.py DATA [DATA ...] [--sizes 1000 3000 6000 20000]
        [--recipes multicrop global] [--work DIR] [--json FILE]

e.g. `python benchmarks/scale.py ../shared/data/paintings ../shared/data/wikiart`.

The roots are merged as `artstyle train DATA DATA` merges them, shuffled once (seed 0),
and the first n paintings form the tree of each size (nested: every size holds the
smaller ones). Sizes beyond the real paintings are filled with copies (re-encoded at JPEG
quality 70, flipped left-right, or cropped to the central 80 %, in that order, each filed
with its painter): the output labels how many of each size are copies.

For each recipe and size, in one process: `StyleClassifier.fit` + `save` with the stage
recording of `artstyle.timing` (scan and hashing, extraction, non-painting features, head
selection per head kind, head refit, calibration, painting detector, similarity index,
test metrics, save), then `evaluate` on the same tree with an empty feature cache (its test
split), then `predict_top_k` on those test paintings without a cache; `check` (decode +
difference hash, near-duplicate search) once per size, and the near-duplicate search alone
on 20k-100k random hashes. Extraction is cold and cumulative: each painting is embedded
once, when it first enters a tree, and a size's extraction time is the sum over its
paintings (the cache keeps the rest out of later timings).

Printed per stage: seconds and peak RSS at each size, its growth exponent (slope of log
time over log n between the two largest sizes), and a projection to Pandora18k (18k) and
100k on 2 cores, and per added Ray node (extraction divided over 2-core nodes at the
measured 96 % per-actor efficiency of benchmarks/ray_scale.py; the other stages run on the
driver). The train projection is compared with the issue's targets.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import ImageOps

from artstyle import StyleClassifier, scan_dataset
from artstyle.data.doctor import check_dataset, near_duplicate_pairs
from artstyle.data.images import load_image
from artstyle.timing import peak_rss_mb, recording, stage

COPY_KINDS = ("re-encoded", "flipped", "cropped")
RAY_EFFICIENCY = 0.96  # benchmarks/ray_scale.py: 2 actors on 2 CPUs against the local engine
TARGETS = {"train_s_18k": 20 * 60, "extraction_share": 0.8, "peak_rss_mb": 4096, "check_s_18k": 180,
           "evaluate_over_extraction": 1.10}


def _copy(source: Path, target: Path, kind: str) -> None:
    image = load_image(source)
    if kind == "flipped":
        image = ImageOps.mirror(image)
    elif kind == "cropped":
        w, h = image.size
        image = image.crop((w // 10, h // 10, w - w // 10, h - h // 10))
    target.parent.mkdir(parents=True, exist_ok=True)
    image.save(target, quality=70 if kind == "re-encoded" else 90)


def build_trees(roots: list[Path], sizes: list[int], work: Path) -> dict[int, tuple[Path, int]]:
    """A tree of symbolic links per size, the first n of one shuffled list (copies at the
    end); returns size -> (tree, copies in it)."""
    dataset = scan_dataset(roots, show_progress=False)
    order = np.random.default_rng(0).permutation(len(dataset.records))
    items = [(dataset.records[i].path, dataset.abspath(dataset.records[i])) for i in order]
    n_real = len(items)
    for j in range(max(sizes) - n_real):
        path, source = items[j % n_real]
        kind = COPY_KINDS[(j // n_real) % len(COPY_KINDS)]
        rel = Path(path)
        copy_rel = rel.with_name(f"{rel.stem}-{kind}-{j // n_real}.jpg").as_posix()
        target = work / "copies" / copy_rel
        if not target.exists():
            _copy(source, target, kind)
        items.append((copy_rel, target))
    trees = {}
    for n in sizes:
        tree = work / f"tree-{n}"
        if not tree.exists():
            staging = work / f".tree-{n}"
            shutil.rmtree(staging, ignore_errors=True)
            for rel, source in items[:n]:
                link = staging / rel
                link.parent.mkdir(parents=True, exist_ok=True)
                os.symlink(Path(source).resolve(), link)
            staging.rename(tree)
        trees[n] = (tree, max(0, n - n_real))
    return trees


def _stages(recorded) -> dict[str, dict]:
    merged: dict[str, dict] = {}
    for s in recorded:
        entry = merged.setdefault(s.name, {"seconds": 0.0, "peak_rss_mb": 0.0})
        entry["seconds"] += s.seconds
        entry["peak_rss_mb"] = max(entry["peak_rss_mb"], s.peak_rss_mb or 0.0)
    return merged


def run_recipe(recipe: str, trees: dict[int, tuple[Path, int]], work: Path) -> dict[int, dict]:
    """train / evaluate / predict stage figures per size for one recipe."""
    cache = work / f"cache-{recipe}"
    extraction_total = 0.0
    out = {}
    for n, (tree, _) in sorted(trees.items()):
        clf = StyleClassifier(features=recipe, cache_dir=cache, show_progress=False)
        with recording() as recorded:
            start = time.perf_counter()
            clf.fit(tree)
            clf.save(work / f"model-{recipe}-{n}")
            wall = time.perf_counter() - start
        stages = _stages(recorded)
        extraction_total += stages["extraction"]["seconds"]  # the paintings new to this size, cold
        stages["extraction"]["seconds_cold_cumulative"] = extraction_total
        stages["extraction"]["img_per_s"] = n / extraction_total
        train_s = wall - stages["extraction"]["seconds"] + extraction_total
        out[n] = {"train": stages, "train_s": train_s, "train_peak_rss_mb": max(s["peak_rss_mb"] for s in stages.values()),
                  "extraction_share": extraction_total / train_s, "accuracy": clf.metrics_.get("accuracy"),
                  "head": clf.config_["head"]["kind"]}
        loaded = StyleClassifier.load(work / f"model-{recipe}-{n}", cache_dir=work / f"eval-cache-{recipe}-{n}",
                                      show_progress=False)
        with recording() as recorded:
            with stage("evaluate"):
                evaluation = loaded.evaluate(tree)
        ev = _stages(recorded)
        n_eval = evaluation.metrics["n_images"] + evaluation.metrics["in_several_movements"]
        expected = n_eval / out[n]["train"]["extraction"]["img_per_s"]
        out[n]["evaluate"] = {"seconds": ev["evaluate"]["seconds"], "images": n_eval,
                              "over_extraction": ev["evaluate"]["seconds"] / expected,
                              "peak_rss_mb": ev["evaluate"]["peak_rss_mb"]}
        shutil.rmtree(work / f"eval-cache-{recipe}-{n}", ignore_errors=True)
        paths = evaluation.paths
        predictor = StyleClassifier.load(work / f"model-{recipe}-{n}", cache_dir=False, show_progress=False)
        with recording() as recorded:
            with stage("predict"):
                predictor.predict_top_k(paths)
        pr = _stages(recorded)["predict"]
        out[n]["predict"] = {"seconds": pr["seconds"], "images": len(paths), "img_per_s": len(paths) / pr["seconds"],
                             "peak_rss_mb": pr["peak_rss_mb"]}
        print(f"  {recipe} n={n}: train {train_s:.0f} s (extraction {extraction_total:.0f} s cold, "
              f"{out[n]['extraction_share']:.0%}), peak {out[n]['train_peak_rss_mb']:.0f} MB; "
              + ", ".join(f"{k} {v['seconds']:.1f}" for k, v in stages.items() if k != "extraction"), flush=True)
    return out


def run_check(trees: dict[int, tuple[Path, int]]) -> dict[int, dict]:
    out = {}
    for n, (tree, _) in sorted(trees.items()):
        with recording() as recorded:
            with stage("check"):
                result = check_dataset(tree, show_progress=False)
        stages = _stages(recorded)
        out[n] = {"seconds": stages["check"]["seconds"], "peak_rss_mb": stages["check"]["peak_rss_mb"],
                  "near_duplicate_search_s": stages.get("near-duplicate search", {}).get("seconds"),
                  "near_duplicate_pairs": len(result.near_duplicates)}
        print(f"  check n={n}: {out[n]['seconds']:.1f} s (near-duplicate search "
              f"{out[n]['near_duplicate_search_s']:.2f} s)", flush=True)
    return out


def run_near_duplicates(sizes: list[int]) -> dict[int, float]:
    """The near-duplicate search alone on random 128-bit hashes."""
    rng = np.random.default_rng(0)
    out = {}
    for n in sizes:
        hashes = rng.integers(0, 256, size=(n, 16), dtype=np.uint8)
        start = time.perf_counter()
        near_duplicate_pairs(hashes, 12)
        out[n] = time.perf_counter() - start
        print(f"  near-duplicate search alone, n={n}: {out[n]:.1f} s", flush=True)
    return out


def exponent(figures: dict[int, float]) -> float | None:
    """Slope of log(seconds) over log(n) between the two largest sizes."""
    points = sorted((n, s) for n, s in figures.items() if s and s > 0)
    if len(points) < 2:
        return None
    (n0, s0), (n1, s1) = points[-2], points[-1]
    return math.log(s1 / s0) / math.log(n1 / n0)


def project(figures: dict[int, float], n: int) -> float | None:
    """Seconds at n from the largest measured size and its growth exponent (at least linear
    for a projection upwards, so that a noisy small stage is not projected to shrink)."""
    points = sorted((k, s) for k, s in figures.items() if s)
    if not points:
        return None
    k, s = points[-1]
    b = max(1.0, exponent(figures) or 1.0)
    return s * (n / k) ** b


def summarise(per_recipe: dict[str, dict[int, dict]], checks: dict[int, dict], alone: dict[int, float],
              nodes: tuple[int, ...] = (1, 2, 4, 8)) -> dict:
    summary: dict = {"recipes": {}, "check": {}, "targets": TARGETS}
    for recipe, sizes in per_recipe.items():
        stage_names = sorted({name for fig in sizes.values() for name in fig["train"]})
        growth = {}
        for name in stage_names:
            key = "seconds_cold_cumulative" if name == "extraction" else "seconds"
            figures = {n: fig["train"].get(name, {}).get(key, 0.0) for n, fig in sizes.items()}
            growth[name] = {"seconds": figures, "exponent": exponent(figures),
                            "projected_18k_s": project(figures, 18000), "projected_100k_s": project(figures, 100000),
                            "peak_rss_mb": {n: fig["train"].get(name, {}).get("peak_rss_mb") for n, fig in sizes.items()}}
        for name in ("evaluate", "predict"):
            figures = {n: fig[name]["seconds"] for n, fig in sizes.items()}
            growth[name] = {"seconds": figures, "exponent": exponent(figures),
                            "over_extraction": {n: fig[name].get("over_extraction") for n, fig in sizes.items()}}
        extraction_18k = growth["extraction"]["projected_18k_s"]
        other_18k = sum(g["projected_18k_s"] or 0 for name, g in growth.items()
                        if name not in ("extraction", "evaluate", "predict"))
        rss = {n: fig["train_peak_rss_mb"] for n, fig in sizes.items()}
        rss_18k = project(rss, 18000)
        summary["recipes"][recipe] = {
            "stages": growth,
            "train_projected_18k_s": extraction_18k + other_18k,
            "extraction_share_18k": extraction_18k / (extraction_18k + other_18k),
            "train_projected_100k_s": growth["extraction"]["projected_100k_s"] + sum(
                g["projected_100k_s"] or 0 for name, g in growth.items() if name not in ("extraction", "evaluate", "predict")),
            "peak_rss_mb": rss, "peak_rss_projected_18k_mb": rss_18k,
            "ray_nodes_18k_s": {k: extraction_18k / (k * (RAY_EFFICIENCY if k > 1 else 1)) + other_18k for k in nodes},
            "accuracy": {n: fig["accuracy"] for n, fig in sizes.items()},
            "head": {n: fig["head"] for n, fig in sizes.items()},
        }
    figures = {n: c["seconds"] for n, c in checks.items()}
    summary["check"] = {"seconds": figures, "exponent": exponent(figures), "projected_18k_s": project(figures, 18000),
                        "near_duplicate_search_s": {n: c["near_duplicate_search_s"] for n, c in checks.items()},
                        "near_duplicate_search_alone_s": alone,
                        "near_duplicate_search_alone_exponent": exponent(alone)}
    return summary


def _print(summary: dict, trees: dict[int, tuple[Path, int]]) -> None:
    sizes = sorted(trees)
    label = ", ".join(f"{n}" + (f" ({c} copies)" if c else "") for n, (_, c) in sorted(trees.items()))
    print(f"\nsizes: {label}")
    for recipe, r in summary["recipes"].items():
        print(f"\n{recipe}: seconds per stage (extraction: cold, cumulative), growth exponent, 18k and 100k projections")
        print(f"{'stage':34}" + "".join(f"{n:>9}" for n in sizes) + f"{'exp':>6}{'18k':>9}{'100k':>9}")
        for name, g in r["stages"].items():
            cells = "".join(f"{g['seconds'].get(n, 0):9.1f}" for n in sizes)
            exp = f"{g['exponent']:6.2f}" if g["exponent"] is not None else "      "
            p18 = f"{g['projected_18k_s']:9.0f}" if g.get("projected_18k_s") else " " * 9
            p100 = f"{g['projected_100k_s']:9.0f}" if g.get("projected_100k_s") else " " * 9
            print(f"{name:34}{cells}{exp}{p18}{p100}")
        print(f"train at 18k: {r['train_projected_18k_s'] / 60:.1f} min projected (target <= 20), extraction "
              f"{r['extraction_share_18k']:.0%} (target >= 80 %); 100k: {r['train_projected_100k_s'] / 60:.0f} min; "
              f"peak RSS {max(r['peak_rss_mb'].values()):.0f} MB measured, {r['peak_rss_projected_18k_mb']:.0f} MB "
              "projected at 18k (target <= 4096)")
        print("evaluate / (its images at the extraction rate): "
              + ", ".join(f"{n}: {v:.2f}" for n, v in r["stages"]["evaluate"]["over_extraction"].items())
              + " (target <= 1.10)")
        print("train at 18k per Ray node count: "
              + ", ".join(f"{k} node{'s' * (k > 1)} {s / 60:.1f} min" for k, s in r["ray_nodes_18k_s"].items()))
    c = summary["check"]
    print("\ncheck: " + ", ".join(f"{n}: {s:.0f} s" for n, s in c["seconds"].items())
          + f"; 18k projected {c['projected_18k_s']:.0f} s (target <= 180); near-duplicate search alone: "
          + ", ".join(f"{n}: {s:.1f} s" for n, s in c["near_duplicate_search_alone_s"].items())
          + f" (exponent {c['near_duplicate_search_alone_exponent']:.2f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("data", nargs="+", type=Path, help="painting folders, merged as `artstyle train` merges them")
    parser.add_argument("--sizes", nargs="+", type=int, default=[1000, 3000, 6000, 20000])
    parser.add_argument("--recipes", nargs="+", default=["multicrop", "global"])
    parser.add_argument("--near-duplicate-sizes", nargs="+", type=int, default=[20000, 50000, 100000])
    parser.add_argument("--work", type=Path, help="folder for copies, trees, caches and models (kept; default: temporary)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="artstyle-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"work folder: {work}", flush=True)
    start = time.perf_counter()
    trees = build_trees(args.data, sorted(args.sizes), work)
    print(f"trees ready in {time.perf_counter() - start:.0f} s", flush=True)
    per_recipe = {recipe: run_recipe(recipe, trees, work) for recipe in args.recipes}
    checks = run_check(trees)
    alone = run_near_duplicates(args.near_duplicate_sizes)
    summary = summarise(per_recipe, checks, alone)
    summary["sizes"] = {n: {"copies": c} for n, (_, c) in trees.items()}
    summary["process_peak_rss_mb"] = peak_rss_mb()
    summary["raw"] = {"recipes": per_recipe, "check": checks}
    _print(summary, trees)
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=float))
        print(f"\nJSON: {args.json}")
    if args.work is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

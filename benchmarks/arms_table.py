"""The table of arms for the shipped default: fine-tuning runs pooled over folds and seeds.

    python benchmarks/arms_table.py RUN.json [RUN.json ...]

Each RUN.json is what `benchmarks/finetune.py --only-fold K --seed S --json RUN.json` wrote
(frozen and fine-tuned arms trained on the same artist-disjoint fold). Per run and pooled
over all runs, for each size band: (i) full-size paintings of held-out artists, (ii) small
WikiArt copies of held-out artists, (iii) (i) shrunk to 224 px. Top-1, top-3 and ECE per
arm; the top-1 gain, paired within each run, pooled with each run weighted by its paintings
and its standard error combined over the runs (their paintings are disjoint within a seed;
across seeds they repeat, so the pooled error is optimistic by up to a factor of about
sqrt(seeds), which the spread over runs shows). Then recall per movement WikiArt lacks
(scored on (i), pooled by support) and the issue's rule: ship the fine-tuned arm when its
top-1 gain is at least one standard error on both (i) and (ii) and top-3 is not lower.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SCORES = {"i": "full-size paintings", "ii": "small WikiArt copies", "iii": "full-size shrunk to 224 px"}
ARMS = ("frozen", "fine-tuned")


def load_runs(paths: list[Path]) -> list[dict]:
    """Each run with its seed and scored fold, from its own recorded configuration."""
    runs = []
    for path in paths:
        run = json.loads(path.read_text())
        runs.append({"name": f"seed {run['config']['seed']} fold {run['config']['only_fold']}", **run})
    return runs


def pooled(runs: list[dict], score: str) -> dict:
    """Pooled figures of one score over runs: per arm the paintings-weighted top-1, top-3 and
    ECE; the paired top-1 gain with its combined standard error and the spread over runs."""
    present = [r for r in runs if score in r["results"]["frozen"]]
    n = np.array([r["results"]["frozen"][score]["n"] for r in present], float)
    w = n / n.sum()
    out = {"n": int(n.sum()), "runs": len(present)}
    for arm in ARMS:
        for key in ("top1", "top3", "ece"):
            out[f"{arm} {key}"] = float(sum(wi * r["results"][arm][score][key] for wi, r in zip(w, present)))
    gains = np.array([r["gains"][score]["gain"] for r in present])
    errors = np.array([r["gains"][score]["se"] for r in present])
    out["gain"] = float(w @ gains)
    out["gain_se"] = float(np.sqrt(np.sum((w * errors) ** 2)))
    out["gain_spread"] = [round(100 * float(g), 1) for g in gains]  # points, per run
    return out


def recall_of(runs: list[dict], movements: list[str]) -> dict[str, tuple[float, float, int]]:
    """(frozen recall, fine-tuned recall, paintings) on (i) per movement, pooled by support."""
    table = {}
    for label in movements:
        rows = [(r["results"]["frozen"]["i"]["per_class"].get(label), r["results"]["fine-tuned"]["i"]["per_class"].get(label))
                for r in runs if "i" in r["results"]["frozen"]]
        rows = [(a, b) for a, b in rows if a and a["support"]]
        support = sum(a["support"] for a, _ in rows)
        if support:
            table[label] = (sum(a["recall"] * a["support"] for a, _ in rows) / support,
                            sum(b["recall"] * a["support"] for a, b in rows) / support, support)
    return table


def verdict(table: dict[str, dict]) -> str:
    """The issue's rule for shipping the fine-tuned arm instead of the frozen default."""
    missing = [s for s in ("i", "ii") if s not in table]
    if missing:
        return f"no verdict: no runs scored {', '.join(SCORES[s] for s in missing)}"
    fails = [f"{SCORES[s]}: gain {100 * table[s]['gain']:+.1f} < one standard error ({100 * table[s]['gain_se']:.1f})"
             for s in ("i", "ii") if table[s]["gain"] < table[s]["gain_se"]]
    fails += [f"{SCORES[s]}: top-3 {table[s]['frozen top3']:.3f} -> {table[s]['fine-tuned top3']:.3f}"
              for s in ("i", "ii") if table[s]["fine-tuned top3"] < table[s]["frozen top3"]]
    return "ship the fine-tuned arm" if not fails else "keep the frozen default: " + "; ".join(fails)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="JSON files of benchmarks/finetune.py --only-fold")
    parser.add_argument("--wikiart-movements", default="baroque,expressionism,impressionism,post impressionism,"
                        "romanticism,symbolism", help="the movements the small copies cover (the rest are reported)")
    args = parser.parse_args()
    runs = load_runs(args.runs)
    print("| run | score | n | frozen top-1 | tuned top-1 | gain (paired) | frozen top-3 | tuned top-3 | frozen ECE | tuned ECE |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        for score in SCORES:
            if score in run["results"]["frozen"]:
                f, t, g = run["results"]["frozen"][score], run["results"]["fine-tuned"][score], run["gains"][score]
                print(f"| {run['name']} | ({score}) | {f['n']} | {f['top1']:.3f} | {t['top1']:.3f} | "
                      f"{100 * g['gain']:+.1f} ± {100 * g['se']:.1f} | {f['top3']:.3f} | {t['top3']:.3f} | "
                      f"{f['ece']:.3f} | {t['ece']:.3f} |")
    table = {score: pooled(runs, score) for score in SCORES if any(score in r["results"]["frozen"] for r in runs)}
    for score, p in table.items():
        print(f"| pooled, {p['runs']} runs | ({score}) | {p['n']} | {p['frozen top1']:.3f} | {p['fine-tuned top1']:.3f} | "
              f"{100 * p['gain']:+.1f} ± {100 * p['gain_se']:.1f} (runs, points: {p['gain_spread']}) | {p['frozen top3']:.3f} | "
              f"{p['fine-tuned top3']:.3f} | {p['frozen ece']:.3f} | {p['fine-tuned ece']:.3f} |")
    wikiart = set(args.wikiart_movements.split(","))
    labels = sorted({label for r in runs if "i" in r["results"]["frozen"]
                     for label in r["results"]["frozen"]["i"]["per_class"]} - wikiart)
    print("\nrecall on full-size paintings (i), movements WikiArt lacks (frozen -> fine-tuned, paintings):")
    for label, (a, b, n) in recall_of(runs, labels).items():
        print(f"  {label}: {a:.2f} -> {b:.2f} ({n})")
    print(f"\n{verdict(table)}")


if __name__ == "__main__":
    main()

"""The table of arms for the shipped default: a candidate against today's default, pooled
over folds and seeds.

    python benchmarks/arms_table.py RUN.json [RUN.json ...]

Each RUN.json is one of:
- `benchmarks/finetune.py --only-fold K --seed S --json RUN.json`: frozen and fine-tuned arms
  trained on the same artist-disjoint fold;
- `benchmarks/accuracy.py --seed S --arms "DEFAULT,CANDIDATE" --json RUN.json`: both arms on
  all folds of one draw, with each scored painting's right/wrong.
All runs of one table compare the same two arms. Per run and pooled over all runs, for each
size band: (i) full-size paintings of held-out artists, (ii) small WikiArt copies of held-out
artists, (iii) (i) shrunk to 224 px. Top-1, top-3 and ECE per arm; the top-1 gain, paired
within each run, pooled with each run weighted by its paintings. Its standard error: when
every run scored the same paintings (accuracy.py's draws), that of each painting's gain
averaged over the draws, which counts a painting once however many draws scored it;
otherwise the runs' errors combined as independent (finetune.py's folds: disjoint within a
seed, repeated across seeds, so optimistic by up to about sqrt(seeds), which the spread over
runs shows). Then recall per movement WikiArt lacks (scored on (i), pooled by support) and
the issue's rule: ship the candidate when its top-1 gain is at least one standard error on
both (i) and (ii) and top-3 is not lower.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

SCORES = {"i": "full-size paintings", "ii": "small WikiArt copies", "iii": "full-size shrunk to 224 px"}


def load_runs(paths: list[Path]) -> list[dict]:
    """Each run as {name, arms: (baseline, candidate), results: {arm: {score: figures}},
    gains: {score: {gain, se}}, right: {arm: {score: right/wrong list}}}."""
    runs = []
    for path in paths:
        run = json.loads(path.read_text())
        if "arms" in run:  # accuracy.py: one draw, every fold
            base, cand = run["arms"][:2]
            scores = [s for s in SCORES if s in base]
            gains = {s: next(g for k, g in run["gains"].items() if k.endswith(f"({s})") and k.startswith(cand["arm"]))
                     for s in scores}
            runs.append({"name": f"seed {run['seed']}, {run['folds']} folds", "arms": ("default", "candidate"),
                         "labels": (base["arm"], cand["arm"]),
                         "results": {"default": base, "candidate": cand}, "gains": gains,
                         "right": {"default": {s: base[f"{s}_right"] for s in scores},
                                   "candidate": {s: cand[f"{s}_right"] for s in scores}}})
        else:  # finetune.py: one fold
            runs.append({"name": f"seed {run['config']['seed']} fold {run['config']['only_fold']}",
                         "arms": ("frozen", "fine-tuned"), "labels": ("frozen", "fine-tuned"), **run})
    if len({r["arms"] for r in runs}) > 1:
        raise SystemExit("arms_table: these runs compare different arms; table them apart")
    return runs


def pooled(runs: list[dict], score: str) -> dict:
    """Pooled figures of one score over runs: per arm the paintings-weighted top-1, top-3 and
    ECE; the paired top-1 gain with its standard error and the spread over runs."""
    base, cand = runs[0]["arms"]
    present = [r for r in runs if score in r["results"][base]]
    n = np.array([r["results"][base][score]["n"] for r in present], float)
    w = n / n.sum()
    out = {"n": int(n.sum()), "runs": len(present)}
    for arm in (base, cand):
        for key in ("top1", "top3", "ece"):
            out[f"{arm} {key}"] = float(sum(wi * r["results"][arm][score][key] for wi, r in zip(w, present)))
    gains = np.array([r["gains"][score]["gain"] for r in present])
    errors = np.array([r["gains"][score]["se"] for r in present])
    out["gain"] = float(w @ gains)
    out["gain_se"] = float(np.sqrt(np.sum((w * errors) ** 2)))
    same = [r.get("right", {}).get(base, {}).get(score) for r in present]
    if all(same) and len({len(x) for x in same}) == 1:  # the same paintings in every run: count each once
        each = np.mean([np.array(r["right"][cand][score], float) - np.array(r["right"][base][score], float)
                        for r in present], axis=0)
        out["n"] = len(each)
        out["gain_se"] = float(each.std(ddof=1) / np.sqrt(len(each)))
    out["gain_spread"] = [round(100 * float(g), 1) for g in gains]  # points, per run
    return out


def recall_of(runs: list[dict], movements: list[str]) -> dict[str, tuple[float, float, int]]:
    """(default recall, candidate recall, paintings) on (i) per movement, pooled by support."""
    base, cand = runs[0]["arms"]
    table = {}
    for label in movements:
        rows = [(r["results"][base]["i"]["per_class"].get(label), r["results"][cand]["i"]["per_class"].get(label))
                for r in runs if "i" in r["results"][base]]
        rows = [(a, b) for a, b in rows if a and a["support"]]
        support = sum(a["support"] for a, _ in rows)
        if support:
            table[label] = (sum(a["recall"] * a["support"] for a, _ in rows) / support,
                            sum(b["recall"] * a["support"] for a, b in rows) / support, support)
    return table


def verdict(table: dict[str, dict], arms: tuple[str, str]) -> str:
    """The issue's rule for shipping the candidate instead of today's default."""
    base, cand = arms
    missing = [s for s in ("i", "ii") if s not in table]
    if missing:
        return f"no verdict: no runs scored {', '.join(SCORES[s] for s in missing)}"
    fails = [f"{SCORES[s]}: gain {100 * table[s]['gain']:+.1f} < one standard error ({100 * table[s]['gain_se']:.1f})"
             for s in ("i", "ii") if table[s]["gain"] < table[s]["gain_se"]]
    fails += [f"{SCORES[s]}: top-3 {table[s][f'{base} top3']:.3f} -> {table[s][f'{cand} top3']:.3f}"
              for s in ("i", "ii") if table[s][f"{cand} top3"] < table[s][f"{base} top3"]]
    return f"ship the {cand} arm" if not fails else f"keep the {base} arm: " + "; ".join(fails)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+", help="JSON files of benchmarks/finetune.py --only-fold "
                        "or benchmarks/accuracy.py with two arms")
    parser.add_argument("--wikiart-movements", default="baroque,expressionism,impressionism,post impressionism,"
                        "romanticism,symbolism", help="the movements the small copies cover (the rest are reported)")
    args = parser.parse_args()
    runs = load_runs(args.runs)
    base, cand = runs[0]["arms"]
    print(f"{base}: {runs[0]['labels'][0]}\n{cand}: {runs[0]['labels'][1]}\n")
    print(f"| run | score | n | {base} top-1 | {cand} top-1 | gain (paired) | {base} top-3 | {cand} top-3 | "
          f"{base} ECE | {cand} ECE |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        for score in SCORES:
            if score in run["results"][base]:
                f, t, g = run["results"][base][score], run["results"][cand][score], run["gains"][score]
                print(f"| {run['name']} | ({score}) | {f['n']} | {f['top1']:.3f} | {t['top1']:.3f} | "
                      f"{100 * g['gain']:+.1f} ± {100 * g['se']:.1f} | {f['top3']:.3f} | {t['top3']:.3f} | "
                      f"{f['ece']:.3f} | {t['ece']:.3f} |")
    table = {score: pooled(runs, score) for score in SCORES if any(score in r["results"][base] for r in runs)}
    for score, p in table.items():
        print(f"| pooled, {p['runs']} runs | ({score}) | {p['n']} | {p[f'{base} top1']:.3f} | {p[f'{cand} top1']:.3f} | "
              f"{100 * p['gain']:+.1f} ± {100 * p['gain_se']:.1f} (runs, points: {p['gain_spread']}) | "
              f"{p[f'{base} top3']:.3f} | {p[f'{cand} top3']:.3f} | {p[f'{base} ece']:.3f} | {p[f'{cand} ece']:.3f} |")
    wikiart = set(args.wikiart_movements.split(","))
    labels = sorted({label for r in runs if "i" in r["results"][base]
                     for label in r["results"][base]["i"]["per_class"]} - wikiart)
    print(f"\nrecall on full-size paintings (i), movements WikiArt lacks ({base} -> {cand}, paintings):")
    for label, (a, b, n) in recall_of(runs, labels).items():
        print(f"  {label}: {a:.2f} -> {b:.2f} ({n})")
    print(f"\n{verdict(table, (base, cand))}")


if __name__ == "__main__":
    main()

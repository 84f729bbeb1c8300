"""Movement-family top-1 beside movement top-1, from `benchmarks/accuracy.py --json` runs.

    python benchmarks/families_table.py s0.json s1.json s2.json [--arm NAME]

Each run is one draw of artist-disjoint folds; every painting is scored once per draw. For
each score ((i) full-size, (ii) small WikiArt copies, (iii) full-size shrunk) it prints, per
draw, movement and family top-1 with their binomial standard errors and n, then the mean
over draws with the spread (lowest-highest) of the draws. The families are
`artstyle.data.families`; family top-1 is right when the most probable family (the sum
over its movements) holds the painting's movement; beside it, what always naming the
commonest family would score. No target: it is what it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from artstyle.data.families import family_of

SCORES = {"i": "full-size paintings", "ii": "small WikiArt copies", "iii": "full-size shrunk to 224 px"}


def _commonest_family(m: dict) -> float:
    """Share of the scored paintings in their commonest family: what always naming it scores."""
    counts: dict[str, int] = {}
    for label, c in m["per_class"].items():
        group = family_of(label) or label
        counts[group] = counts.get(group, 0) + c["support"]
    return max(counts.values()) / max(sum(counts.values()), 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--arm", default=None, help="arm name (default: each run's first)")
    args = parser.parse_args()
    runs = [json.loads(path.read_text()) for path in args.runs]
    print("| score | draw | n | movement top-1 | family top-1 | commonest family |\n|---|---|---:|---:|---:|---:|")
    for score, title in SCORES.items():
        pairs = []
        for path, run in zip(args.runs, runs):
            arm = next(a for a in run["arms"] if a.get("data") == "+extra" and args.arm in (None, a["arm"]))
            m = arm.get(score)
            if m is None or "family_top1" not in m:
                continue
            pairs.append((m["top1"], m["family_top1"]))
            print(f"| {title} | {path.stem} (seed {run['seed']}) | {m['n']} | {m['top1']:.3f} ± {m['top1_se']:.3f} "
                  f"| {m['family_top1']:.3f} ± {m['family_top1_se']:.3f} | {_commonest_family(m):.3f} |")
        if len(pairs) > 1:
            movement, family = zip(*pairs)
            print(f"| {title} | mean of {len(pairs)} draws | | {sum(movement) / len(pairs):.3f} "
                  f"({min(movement):.3f}-{max(movement):.3f}) | {sum(family) / len(pairs):.3f} "
                  f"({min(family):.3f}-{max(family):.3f}) | |")


if __name__ == "__main__":
    main()

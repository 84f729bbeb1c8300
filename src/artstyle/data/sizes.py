"""Image sizes per movement and per source folder, and the mismatches that teach resolution.

A collection merged from a full-size museum set and a 224-px web copy (WikiArt) gives some
movements ten times fewer pixels than others: a model then learns "small and soft means
baroque" as much as the movement. Sizes are short sides in pixels (read from file
headers at scan time); a group is flagged when its median short side differs from the
median of every other image by more than `SIZE_RATIO`.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from .dataset import ImageRecord

SIZE_RATIO = 2.0  # median short sides further apart than this: the model may learn size


def quantiles(values: Sequence[int]) -> dict[str, int]:
    """min, p10, median, p90, max of `values` ({} when empty)."""
    if not len(values):
        return {}
    q = np.percentile(values, [0, 10, 50, 90, 100])
    return dict(zip(("min", "p10", "median", "p90", "max"), (int(round(v)) for v in q)))


def _groups(pairs: Iterable[tuple[str, int | None]]) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for name, side in pairs:
        if side:
            groups[name].append(side)
    return dict(sorted(groups.items()))


def size_outliers(groups: dict[str, list[int]], ratio: float = SIZE_RATIO) -> dict[str, float]:
    """Groups whose median short side is more than `ratio` times larger or smaller than the
    median of all the other groups' images: name -> median / median of the rest."""
    flagged = {}
    for name, sides in groups.items():
        rest = [s for other, values in groups.items() if other != name for s in values]
        if not rest:
            continue
        factor = float(np.median(sides) / np.median(rest))
        if factor > ratio or factor < 1 / ratio:
            flagged[name] = round(factor, 2)
    return flagged


def size_profile(records: Sequence[ImageRecord]) -> dict:
    """JSON-ready short-side distribution: overall, per movement, per source folder, and
    the movements and sources flagged by `size_outliers` (config.json, `artstyle check`)."""
    by_movement = _groups((r.label, r.short_side) for r in records)
    by_source = _groups((r.source, r.short_side) for r in records)
    sides = [r.short_side for r in records if r.short_side]
    return {
        "short_side": quantiles(sides),
        "per_movement": {name: quantiles(values) for name, values in by_movement.items()},
        "per_source": {name: quantiles(values) for name, values in by_source.items()} if len(by_source) > 1 else {},
        "flagged_movements": size_outliers(by_movement),
        "flagged_sources": size_outliers(by_source) if len(by_source) > 1 else {},
        "ratio": SIZE_RATIO,
    }


def size_warning(profile: dict) -> str | None:
    """One line naming the movements (and sources) whose images are much smaller or larger."""
    parts = [f"{name} ({factor:g}x)" for name, factor in profile["flagged_movements"].items()]
    parts += [f"source {name} ({factor:g}x)" for name, factor in profile["flagged_sources"].items()]
    if not parts:
        return None
    return (f"median short side differs more than {profile['ratio']:g}x from the rest of the collection: "
            f"{', '.join(parts)}; the model may learn image size along with the movement")


def size_shift(evaluated: Sequence[int | None], training_median: float | None,
               ratio: float = SIZE_RATIO) -> float | None:
    """Median short side of the evaluated images (None: size unknown) over the training
    median, when it is more than `ratio` away from 1 (None otherwise, or without sizes)."""
    known = [s for s in evaluated if s]
    if not known or not training_median:
        return None
    factor = float(np.median(known) / training_median)
    return round(factor, 2) if factor > ratio or factor < 1 / ratio else None

"""How much each training painting counts in the head's loss (`--balance`).

  class    every movement weighs the same; inside it, every painting the same.
  breadth  every movement weighs the same; inside it every source (root folder) the same,
           and inside that every artist by the square root of his paintings (a painter
           with 100 paintings counts 10x one with 1, not 100x).

Why breadth: a movement of many painters (expressionism on WikiArt: 100+) otherwise
becomes a catch-all that swallows narrow movements, and a big source with its own label
conventions (WikiArt's style folders) outvotes the collection the user cares about.
Copies of a painting (size variants) share its weight through `multiplicity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import ArtstyleError

BALANCINGS = ("class", "breadth")
DEFAULT_BALANCING = "breadth"
ARTIST_POWER = 0.5  # an artist's weight grows as (paintings) ** ARTIST_POWER


def check_balancing(name: str) -> str:
    if name not in BALANCINGS:
        raise ArtstyleError(f"unknown balancing {name!r}; choose one of {', '.join(BALANCINGS)}")
    return name


@dataclass(frozen=True)
class RowWeighting:
    """Per-row weights of a training table, computed afresh for any subset of its rows
    (each cross-validation fold rebalances what it trains on)."""

    scheme: str
    y: np.ndarray  # class index per row
    sources: np.ndarray  # source (root folder) per row
    artists: np.ndarray  # artist per row
    multiplicity: np.ndarray  # relative weight of the row among its painting's copies (1 for originals)

    def __post_init__(self) -> None:
        check_balancing(self.scheme)
        n = len(self.y)
        if not (len(self.sources) == len(self.artists) == len(self.multiplicity) == n):
            raise ArtstyleError("row weighting needs one source, artist and multiplicity per row")

    def __call__(self, rows: np.ndarray | None = None) -> np.ndarray:
        """Weights of `rows` (indices or a mask; None: all), mean 1 over them."""
        if rows is None:
            index = np.arange(len(self.y))
        else:
            rows = np.asarray(rows)
            index = np.flatnonzero(rows) if rows.dtype == bool else rows
        y, m = self.y[index], self.multiplicity[index].astype(np.float64)
        weights = np.zeros(len(index))
        classes = np.unique(y)
        for c in classes:
            in_class = y == c
            if self.scheme == "class":
                weights[in_class] = m[in_class] / m[in_class].sum()
                continue
            sources = self.sources[index][in_class]
            artists = self.artists[index][in_class]
            cm, cw = m[in_class], np.zeros(in_class.sum())
            for source in np.unique(sources):
                here = sources == source
                _, inverse = np.unique(artists[here], return_inverse=True)
                mass = np.bincount(inverse, weights=cm[here])  # an artist's paintings, copies shared
                w = cm[here] * mass[inverse] ** (ARTIST_POWER - 1.0)
                cw[here] = w / w.sum() / len(np.unique(sources))
            weights[in_class] = cw
        return weights * len(index) / weights.sum()

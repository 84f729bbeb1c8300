"""Movement families: the level a cataloguer can file when the movement itself is unsure.

"high renaissance 35 %, early renaissance 30 %, northern renaissance 20 %" is a confident
"Renaissance, 85 %". One declarative row per family: its name and the movements (canonical
labels, see `labels.normalize_label`) it holds.

The grouping is by period, after the period sections of survey histories of Western
painting (E. H. Gombrich, *The Story of Art*, 16th ed., 1995, chapters 10-27; H. W. Janson,
*History of Art*, parts II-IV; Wikipedia's "Western painting" article): medieval icons; the
three Renaissances; the Baroque and its Rococo sequel; the nineteenth century's movements;
the modernisms of the early twentieth century; abstraction and pop art after them. It is a
convenience for filing, not a claim that a family's movements look alike: naive art spans
the nineteenth and twentieth centuries and is filed with the early modernisms it was shown
beside (Rousseau at the Salon des Indépendants), abstract art begins before 1914 and is filed
with the post-war abstraction that dominates Pandora18k's folder.

A user's own movements that no row names have no family: their answers stay movement-only.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MOVEMENT_FAMILIES: dict[str, tuple[str, ...]] = {
    "Medieval": ("byzantine iconography",),
    "Renaissance": ("early renaissance", "northern renaissance", "high renaissance"),
    "Baroque and Rococo": ("baroque", "rococo"),
    "19th century": ("romanticism", "realism", "impressionism", "post impressionism", "symbolism"),
    "Early modernism": ("fauvism", "expressionism", "cubism", "surrealism", "naive art"),
    "Abstraction and pop": ("abstract art", "pop art"),
}

_FAMILY_OF = {movement: family for family, movements in MOVEMENT_FAMILIES.items() for movement in movements}


def family_of(movement: str) -> str | None:
    """The family a canonical movement label belongs to; None for movements no row names."""
    return _FAMILY_OF.get(movement)


class Families:
    """The families of one model's movements: which columns of its probabilities sum to which
    family. Movements outside every family are their own group, so the family figures of a
    model without families equal its movement figures."""

    def __init__(self, labels: Sequence[str]):
        self.labels = list(labels)
        self.members: dict[str, list[int]] = {}
        for i, label in enumerate(self.labels):
            family = family_of(label)
            if family is not None:
                self.members.setdefault(family, []).append(i)
        self.names = list(self.members)
        group_of = {col: self.names.index(family) for family, cols in self.members.items() for col in cols}
        self.group = np.array([group_of.get(i, len(self.names) + i) for i in range(len(self.labels))], dtype=np.int64)

    def __bool__(self) -> bool:
        """Whether any family holds two or more of the model's movements: only then do the
        family figures say something the movement figures do not."""
        return any(len(cols) > 1 for cols in self.members.values())

    def group_proba(self, proba: np.ndarray) -> np.ndarray:
        """(n, n_groups) probability of each group per row: a family's is the sum over its
        movements; columns are indexed by `self.group`."""
        proba = np.asarray(proba, dtype=np.float64)
        out = np.zeros((len(proba), int(self.group.max()) + 1 if len(self.group) else 0))
        for col, group in enumerate(self.group):
            out[:, group] += proba[:, col]
        return out

    def top(self, row: np.ndarray) -> tuple[str, float, int] | None:
        """(family, its probability, its most probable movement's column) for the most probable
        group of one row; None when that group is a movement without a family."""
        groups = self.group_proba(np.asarray(row)[None])[0]
        best = int(np.argmax(groups))
        if best >= len(self.names):
            return None
        cols = self.members[self.names[best]]
        return self.names[best], float(groups[best]), cols[int(np.argmax(np.asarray(row)[cols]))]

    def accuracy(self, proba: np.ndarray, y_true: np.ndarray) -> float:
        """Share of rows whose most probable group (family, or movement without one) holds
        the true movement."""
        if len(y_true) == 0:
            return 0.0
        return float((self.group_proba(proba).argmax(axis=1) == self.group[np.asarray(y_true)]).mean())

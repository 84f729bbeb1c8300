"""Training paintings also seen small: the step that makes a model answer alike at any size.

A collection that holds some movements only as web-size copies (WikiArt's 224-px files)
and others at full size teaches a head that "small and soft" is a movement. Each
training painting is therefore also embedded shrunk to a few short sides drawn in
[`low`, `high`] px (never larger than it is), so every movement is seen at every size.
The sides are drawn from the painting's content hash: the same painting gets the same
variants in every run, and their features come from the cache. Variants train with
their painting's label, fold and artist, and share its weight (`weight` each); they are
never scored (cross-validation scores the paintings themselves).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.dataset import resized_key
from ..data.images import ImageInput, Resized
from ..errors import ArtstyleError

DEFAULT_COPIES = 2


@dataclass(frozen=True)
class SizeVariants:
    """`copies` shrunk views per training painting, short sides in [`low`, `high`] px."""

    copies: int = DEFAULT_COPIES
    low: int = 96
    high: int = 256
    weight: float = 0.5  # of each variant, relative to its painting

    def __post_init__(self) -> None:
        if self.copies < 0 or not 16 <= self.low <= self.high or not 0 < self.weight <= 1:
            raise ArtstyleError("size variants need copies >= 0, 16 <= low <= high and a weight in (0, 1]")

    def side(self, key: str, copy: int) -> int:
        """The short side of copy `copy` of the painting whose content hash is `key`."""
        draw = int.from_bytes(hashlib.sha256(f"{key}|{copy}".encode()).digest()[:8], "big")
        return self.low + draw % (self.high - self.low + 1)

    def plan(self, sources: Sequence[ImageInput], keys: Sequence[str],
             short_sides: Sequence[int | None]) -> Variants:
        """The variants of files `sources` (content hashes `keys`, short sides as scanned):
        only sides smaller than the painting's own; in-memory images get none."""
        parents, images, variant_keys = [], [], []
        for row, (source, key, short) in enumerate(zip(sources, keys, short_sides)):
            if not short or not isinstance(source, (str, os.PathLike)):
                continue
            for copy in range(self.copies):
                side = self.side(key, copy)
                if side < short:
                    parents.append(row)
                    images.append(Resized(source, side))
                    variant_keys.append(resized_key(key, side))
        return Variants(np.array(parents, np.int64), images, variant_keys, self.weight)

    def to_dict(self) -> dict:
        return {"copies": self.copies, "low": self.low, "high": self.high, "weight": self.weight}


@dataclass
class Variants:
    """Planned variants: `parents[i]` is the row of the painting `images[i]` shrinks."""

    parents: np.ndarray
    images: list[Resized]
    keys: list[str]
    weight: float

    def __len__(self) -> int:
        return len(self.images)

    def select(self, keep: np.ndarray, renumber: np.ndarray | None = None) -> Variants:
        """The variants where `keep` is true (e.g. those extracted, or of training
        paintings), their parents mapped through `renumber` (old row -> new row) when given."""
        keep = np.asarray(keep, bool)
        parents = self.parents[keep] if renumber is None else np.asarray(renumber)[self.parents[keep]]
        return Variants(parents.astype(np.int64), [img for img, k in zip(self.images, keep) if k],
                        [key for key, k in zip(self.keys, keep) if k], self.weight)

    @property
    def short_sides(self) -> list[int]:
        return [img.short_side for img in self.images]

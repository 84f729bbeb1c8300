"""Train/validation/test splits that never leak: exact duplicates, and in artist mode
whole artists, always land on the same side.

Both modes split the same way: records are grouped into indivisible units (a group of
identical files; in artist mode everything by one artist), each unit belongs to its
majority class, and each class's units are dealt to test and validation until each
holds its fraction of the class's images. A class with too few units keeps them for
training and is reported as untested.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import ArtstyleError
from .dataset import ImageRecord
from .labels import normalize_artist

log = logging.getLogger("artstyle")

SplitMode = Literal["auto", "stratified", "artist"]
SPLIT_MODES: tuple[str, ...] = ("auto", "stratified", "artist")
SPLIT_NAMES = ("train", "val", "test")
SPLITS_CSV_FIELDS = ("path", "label", "artist", "sha256", "split")

# Folder names that stand for "we do not know who painted it": they are not one person.
_PLACEHOLDER_ARTIST = re.compile(r"^(unknown|unidentified|anonymous|various|unattributed)")


@dataclass
class Split:
    """Which split each record (by relative path) belongs to, and how it was made."""

    mode: str
    seed: int
    assignment: dict[str, str]
    untested: list[str] = field(default_factory=list)

    def select(self, records: Sequence[ImageRecord], name: str) -> list[int]:
        """Indices of `records` in split `name`."""
        return [i for i, r in enumerate(records) if self.assignment.get(r.path) == name]

    def counts(self) -> dict[str, int]:
        counts = Counter(self.assignment.values())
        return {name: counts.get(name, 0) for name in SPLIT_NAMES}


def artist_key(record: ImageRecord) -> str:
    """The person behind a record; placeholder names stay separate per class."""
    name = normalize_artist(record.artist)
    if _PLACEHOLDER_ARTIST.match(name):
        return f"{name}\x00{record.label}"
    return name


def _units(records: Sequence[ImageRecord], mode: str) -> list[list[int]]:
    """Indivisible groups of record indices (union-find over shared hash / artist)."""
    parent = list(range(len(records)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first_seen: dict[str, int] = {}
    for i, record in enumerate(records):
        keys = ["hash:" + record.sha256]
        if mode == "artist":
            keys.append("artist:" + artist_key(record))
        for key in keys:
            j = first_seen.setdefault(key, i)
            parent[find(i)] = find(j)
    groups: dict[int, list[int]] = defaultdict(list)
    for i in range(len(records)):
        groups[find(i)].append(i)
    return sorted(groups.values(), key=lambda g: records[g[0]].path)


def _deal(sizes: list[int], targets: dict[str, float], rng: np.random.Generator) -> list[str]:
    """Deal units (given by size) of one class to splits; the rest stay in train.

    Each wanted split first gets one random unit of a fitting size (at most twice its
    target, or the smallest left) as long as one unit is left for training; then units
    go, in random order, wherever they bring a split closer to its target image count.
    """
    order = [int(i) for i in rng.permutation(len(sizes))]
    out = ["train"] * len(sizes)
    wanted = [name for name in ("test", "val") if targets[name] > 0]
    filled = dict.fromkeys(wanted, 0)
    for name in wanted[: max(0, len(sizes) - 1)]:
        free = [i for i in order if out[i] == "train"]
        limit = max(2 * targets[name], min(sizes[i] for i in free))
        seat = next(i for i in free if sizes[i] <= limit)
        out[seat] = name
        filled[name] += sizes[seat]
    for i in order:
        if out[i] != "train" or out.count("train") <= 1 or not wanted:
            continue
        name = max(wanted, key=lambda s: targets[s] - filled[s])
        if targets[name] - filled[name] >= sizes[i] / 2:
            out[i] = name
            filled[name] += sizes[i]
    return out


def has_artists(records: Sequence[ImageRecord]) -> bool:
    """True when the tree names who painted what (`<movement>/<artist>/<image>`)."""
    return any(not _PLACEHOLDER_ARTIST.match(normalize_artist(r.artist)) for r in records)


def resolve_split_mode(records: Sequence[ImageRecord], mode: str = "auto") -> str:
    """`auto` is the honest split a tree allows: whole artists held out when it has artist
    folders (what a user sees on paintings by new artists), else stratified by image."""
    if mode != "auto":
        return mode
    resolved = "artist" if has_artists(records) else "stratified"
    log.info("split: %s (%s); --split chooses", "by artist" if resolved == "artist" else "stratified by image",
             "the tree has artist folders" if resolved == "artist" else "no artist folders")
    return resolved


def make_split(
    records: Sequence[ImageRecord],
    mode: str = "stratified",
    *,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
) -> Split:
    """Split `records`; the same records, mode and seed always give the same split.
    `auto` resolves to artist or stratified (`resolve_split_mode`); `Split.mode` says which."""
    if mode not in SPLIT_MODES:
        raise ArtstyleError(f"unknown split mode {mode!r}; choose one of {', '.join(SPLIT_MODES)}")
    mode = resolve_split_mode(records, mode)
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ArtstyleError("split fractions must be in [0, 1) and leave images for training")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[list[int]]] = defaultdict(list)
    for unit in _units(records, mode):
        majority = Counter(records[i].label for i in unit).most_common(1)[0][0]
        by_class[majority].append(unit)
    assignment: dict[str, str] = {}
    for label in sorted(by_class):
        units = by_class[label]
        n_images = sum(len(u) for u in units)
        targets = {"test": test_fraction * n_images, "val": val_fraction * n_images}
        for unit, name in zip(units, _deal([len(u) for u in units], targets, rng)):
            for i in unit:
                assignment[records[i].path] = name
    tested = {r.label for r in records if assignment[r.path] == "test"}
    untested = sorted({r.label for r in records} - tested) if test_fraction > 0 else []
    if untested:
        unit_word = "artists" if mode == "artist" else "images"
        log.warning(
            "too few %s for a test split, kept for training only (untested): %s",
            unit_word,
            ", ".join(untested),
        )
    return Split(mode, seed, assignment, untested)


def make_folds(records: Sequence[ImageRecord], k: int, mode: str = "artist", *, seed: int = 0) -> np.ndarray:
    """Cross-validation fold (0..k-1) per record, with the same indivisible units as splits.

    Each class's units are shuffled and dealt to the fold holding fewest of its images.
    A class with a single unit cannot be scored on unseen data: its records get -1
    (in every training fold, never scored).
    """
    if mode not in SPLIT_MODES:
        raise ArtstyleError(f"unknown split mode {mode!r}; choose one of {', '.join(SPLIT_MODES)}")
    if mode == "auto":
        mode = "artist" if has_artists(records) else "stratified"
    if k < 2:
        raise ArtstyleError("cross-validation needs at least 2 folds")
    rng = np.random.default_rng(seed)
    by_class: dict[str, list[list[int]]] = defaultdict(list)
    for unit in _units(records, mode):
        by_class[Counter(records[i].label for i in unit).most_common(1)[0][0]].append(unit)
    folds = np.full(len(records), -1, dtype=np.int64)
    for label in sorted(by_class):
        units = by_class[label]
        if len(units) < 2:
            continue
        filled = np.zeros(k)
        offset = rng.permutation(k)  # which folds win ties differs per class
        for u in rng.permutation(len(units)):
            fold = int(offset[np.argmin(filled[offset])])
            folds[units[u]] = fold
            filled[fold] += len(units[u])
    return folds


def splits_csv(records: Sequence[ImageRecord], split: Split) -> str:
    """The split as CSV text: one row per image, the file people open to audit a model."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SPLITS_CSV_FIELDS)
    for r in records:
        writer.writerow([r.path, r.label, r.artist, r.sha256, split.assignment.get(r.path, "")])
    return buffer.getvalue()


def parse_splits_csv(text: str) -> list[dict[str, str]]:
    """Rows of a splits.csv; raises ArtstyleError on a malformed file."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not set(SPLITS_CSV_FIELDS) <= set(reader.fieldnames):
        raise ArtstyleError(f"splits.csv must have the columns {', '.join(SPLITS_CSV_FIELDS)}")
    return list(reader)

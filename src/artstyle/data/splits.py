"""Train/validation/test splits that never leak: exact duplicates, and in artist mode
whole artists, always land on the same side.

Both modes split the same way: records are grouped into indivisible units (a group of
identical files; in artist mode everything by one artist, in every movement he painted
in), each unit belongs to its majority class, and each class's units are dealt to test
and validation until each holds its fraction of the class's images. A class with too few
units keeps them for training and is reported as untested.

Units span movements (Dali paints surrealism and expressionism; WikiArt files some images
under two styles), so dealing one movement's units can hold out all of another's: such a
movement then takes its smallest held-out unit back into training (splits) or keeps it in
training in every fold (cross-validation), and a log line says so. Every movement always
has training images.
"""

from __future__ import annotations

import csv
import io
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from ..errors import ArtstyleError
from .dataset import ImageRecord
from .labels import is_placeholder_artist, normalize_artist

log = logging.getLogger("artstyle")

SplitMode = Literal["auto", "stratified", "artist"]
SPLIT_MODES: tuple[str, ...] = ("auto", "stratified", "artist")
SPLIT_NAMES = ("train", "val", "test")
SPLITS_CSV_FIELDS = ("path", "label", "artist", "sha256", "split")  # what a splits.csv must have
SPLITS_CSV_EXTRA = ("source", "also_in")  # the tree it came from; other movements of the same bytes



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
    if is_placeholder_artist(name):
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


def _unit_names(records: Sequence[ImageRecord], unit: list[int]) -> str:
    return ", ".join(sorted({records[i].artist for i in unit}))


def _other_labels(records: Sequence[ImageRecord], unit: list[int], label: str) -> str:
    return ", ".join(sorted({records[i].label for i in unit} - {label})) or "no other movement"


def _rescue(records: Sequence[ImageRecord], units: list[list[int]], held_out: list[bool]) -> list[tuple[str, int]]:
    """Flip `held_out` for the smallest held-out unit of each movement that has no image in
    training; return (movement, unit index) of each rescue."""
    rescued = []
    labels_of = [{records[i].label for i in unit} for unit in units]
    for label in sorted({r.label for r in records}):
        holding = [u for u, labels in enumerate(labels_of) if label in labels]
        if any(not held_out[u] for u in holding):
            continue
        u = min(holding, key=lambda u: (len(units[u]), records[units[u][0]].path))
        held_out[u] = False
        rescued.append((label, u))
    return rescued


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
    return any(not is_placeholder_artist(r.artist) for r in records)


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
    dealt: list[tuple[list[int], str]] = []
    for label in sorted(by_class):
        units = by_class[label]
        n_images = sum(len(u) for u in units)
        targets = {"test": test_fraction * n_images, "val": val_fraction * n_images}
        dealt += zip(units, _deal([len(u) for u in units], targets, rng))
    units = [unit for unit, _ in dealt]
    held_out = [name != "train" for _, name in dealt]
    rescued = _rescue(records, units, held_out)
    for label, u in rescued:
        log.warning("%s: all its artists were held out (%s, also in %s): kept in training", label,
                    _unit_names(records, units[u]), _other_labels(records, units[u], label))
    assignment = {records[i].path: name if held_out[u] else "train"
                  for u, (unit, name) in enumerate(dealt) for i in unit}
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
    # A movement all of whose images sit in one fold has none to train on there: its
    # smallest unit in that fold trains in every fold instead (never scored).
    units = [u for label in sorted(by_class) for u in by_class[label]]
    for fold in range(k):
        for label, u in _rescue(records, units, [folds[unit[0]] == fold for unit in units]):
            folds[units[u]] = -1
            log.info("cross-validation: %s trains in every fold (%s, also in %s), never scored", label,
                     _unit_names(records, units[u]), _other_labels(records, units[u], label))
    return folds


def splits_csv(records: Sequence[ImageRecord], split: Split) -> str:
    """The split as CSV text: one row per image, the file people open to audit a model.
    `also_in` names the other movements the same bytes are filed under (';'-separated)."""
    movements: dict[str, set[str]] = defaultdict(set)
    for r in records:
        movements[r.sha256].add(r.label)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(SPLITS_CSV_FIELDS + SPLITS_CSV_EXTRA)
    for r in records:
        also = ";".join(sorted(movements[r.sha256] - {r.label}))
        writer.writerow([r.path, r.label, r.artist, r.sha256, split.assignment.get(r.path, ""), r.source, also])
    return buffer.getvalue()


def parse_splits_csv(text: str) -> list[dict[str, str]]:
    """Rows of a splits.csv; raises ArtstyleError on a malformed file."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or not set(SPLITS_CSV_FIELDS) <= set(reader.fieldnames):
        raise ArtstyleError(f"splits.csv must have the columns {', '.join(SPLITS_CSV_FIELDS)}")
    return list(reader)

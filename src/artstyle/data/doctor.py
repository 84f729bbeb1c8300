"""The dataset doctor: find what would spoil training before training starts.

Reads a painting tree (never writes to it) and reports counts per class and artist,
image sizes, files that do not decode, exact duplicates (same bytes), near duplicates
(same picture re-encoded or resized: a difference hash of the decoded thumbnail), tiny
images, sizes per movement and per source folder (and those far smaller or larger than
the rest), artists filed under several movements and class imbalance. Duplicates across
the train/test boundary inflate scores; the same image under two movements is a mixed
painting (kept on one side of every split, scored once: right if either is named).
"""

from __future__ import annotations

import csv
import io
import os
import statistics
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ImageLoadError
from ..files import atomic_write_bytes
from ..progress import progress_bar
from ..timing import stage
from .dataset import Dataset, ImageRecord, Roots, scan_dataset
from .images import load_image
from .labels import count_artists, is_placeholder_artist, normalize_artist
from .sizes import quantiles, size_profile

HASH_SIDE = 8  # difference hash: 8x8 horizontal + 8x8 vertical gradient signs = 128 bits
HASH_DECODE_SIDE = 128  # hash a decode this large: tinier JPEG drafts make copies differ by chance
NEAR_DISTANCE = 12  # of 128 bits; see docs/notes/dataset-check.md for how this was chosen
MIN_CHUNK_BITS = 6  # multi-index hashing needs chunks at least this wide to bucket anything
NEAREST_SAMPLE = 2000  # images whose nearest-neighbour distance the report plots
MIN_SIDE = 224  # the network's input: smaller images are upscaled and lose their brushwork
UNDER_REPRESENTED = 0.5  # a class with fewer images than this share of the median class
DOMINANT = 0.5  # a movement where one artist painted more than this share of the images


@dataclass(frozen=True)
class ImageFacts:
    """What the doctor learned about one readable image."""

    path: str
    label: str
    artist: str
    sha256: str
    width: int
    height: int


@dataclass(frozen=True)
class NearDuplicate:
    a: str
    b: str
    distance: int  # differing hash bits out of 128
    across_classes: bool


@dataclass
class DatasetCheck:
    """Every finding of `check_dataset`, JSON-ready through `to_dict()`."""

    roots: list[Path]
    labels: list[str]
    images: list[ImageFacts]
    unreadable: list[tuple[str, str]]  # (path, reason)
    exact_duplicates: list[list[str]]  # groups of paths with identical bytes
    near_duplicates: list[NearDuplicate]
    nearest_distance: list[int]  # bits from each image (a sample beyond NEAREST_SAMPLE) to its closest other
    min_side: int
    near_distance: int
    ignored: dict[str, int] = field(default_factory=dict)
    sizes: dict = field(default_factory=dict)  # `sizes.size_profile` of the readable images
    files: dict[str, Path] = field(default_factory=dict)  # image path -> file, where not roots[0] / path

    def abspath(self, path: str) -> Path:
        return self.files.get(path) or self.roots[0] / path

    def class_counts(self) -> dict[str, int]:
        counts = Counter(i.label for i in self.images)
        return {label: counts.get(label, 0) for label in self.labels}

    def artists_per_class(self) -> dict[str, int]:
        """Painters per movement, counted as everywhere else (`count_artists`: no placeholders)."""
        return {label: count_artists(artists) for label, artists in self.artist_counts().items()}

    def artist_counts(self) -> dict[str, dict[str, int]]:
        """Images per artist folder within each movement, largest first."""
        counts: dict[str, Counter] = {label: Counter() for label in self.labels}
        for i in self.images:
            counts[i.label][i.artist] += 1
        return {label: dict(c.most_common()) for label, c in counts.items()}

    def largest_artist(self) -> dict[str, tuple[str, float]]:
        """Per movement, the named artist with most images and their share of the movement.

        Folders like "unknown" or "Unidentified_artists" are not one hand and are skipped.
        """
        largest = {}
        for label, artists in self.artist_counts().items():
            named = [(n, a) for a, n in artists.items() if not is_placeholder_artist(a)]
            if named:
                n, artist = max(named)
                largest[label] = (artist, round(n / sum(artists.values()), 3))
        return largest

    def dominated(self) -> dict[str, dict]:
        """Movements where one artist painted more than DOMINANT of the images: such a
        class may teach that painter's hand rather than the movement."""
        return {label: {"artist": artist, "share": share}
                for label, (artist, share) in self.largest_artist().items() if share > DOMINANT}

    def tiny(self) -> list[ImageFacts]:
        return [i for i in self.images if min(i.width, i.height) < self.min_side]

    def artists_in_several_classes(self) -> dict[str, dict[str, int]]:
        """Artist (as spelled in the first folder seen) -> images per class, for artists in 2+ classes."""
        by_key: dict[str, Counter] = defaultdict(Counter)
        spelling: dict[str, str] = {}
        for i in self.images:
            key = normalize_artist(i.artist)
            if key and not is_placeholder_artist(key):
                by_key[key][i.label] += 1
                spelling.setdefault(key, i.artist)
        return {spelling[k]: dict(sorted(c.items())) for k, c in sorted(by_key.items()) if len(c) > 1}

    def under_represented(self) -> list[str]:
        counts = self.class_counts()
        median = statistics.median(counts.values()) if counts else 0
        return [label for label, n in counts.items() if n < UNDER_REPRESENTED * median]

    def imbalance_ratio(self) -> float:
        counts = [n for n in self.class_counts().values() if n]
        return max(counts) / min(counts) if counts else 0.0

    def label_of(self) -> dict[str, str]:
        return {i.path: i.label for i in self.images}

    def to_dict(self) -> dict:
        label_of = self.label_of()
        sides = [min(i.width, i.height) for i in self.images]
        return {
            "root": " + ".join(str(r) for r in self.roots),
            "roots": [str(r) for r in self.roots],
            "n_images": len(self.images),
            "n_classes": len(self.labels),
            "n_artists": count_artists(i.artist for i in self.images),
            "class_counts": self.class_counts(),
            "artists_per_class": self.artists_per_class(),
            "artist_counts": self.artist_counts(),
            "dominated_by_one_artist": self.dominated(),
            "imbalance_ratio": round(self.imbalance_ratio(), 2),
            "under_represented": self.under_represented(),
            "shortest_side": quantiles(sides),
            "sizes": self.sizes,
            "unreadable": [{"path": p, "reason": r} for p, r in self.unreadable],
            "exact_duplicates": [
                {"paths": g, "across_classes": len({label_of[p] for p in g}) > 1} for g in self.exact_duplicates
            ],
            "near_duplicates": [asdict(d) for d in self.near_duplicates],
            "near_distance": self.near_distance,
            "tiny": [{"path": i.path, "width": i.width, "height": i.height} for i in self.tiny()],
            "min_side": self.min_side,
            "artists_in_several_classes": self.artists_in_several_classes(),
            "ignored": self.ignored,
        }

    def fix_plan(self) -> list[dict[str, str]]:
        """Suggested actions, one row per file (or class); nothing is done to the data."""
        label_of = self.label_of()
        rows: list[dict[str, str]] = []

        def add(action: str, path: str, reason: str, related: str = "") -> None:
            rows.append({"action": action, "path": path, "class": label_of.get(path, ""), "reason": reason,
                         "related": related})

        for path, reason in self.unreadable:
            add("delete-or-replace", path, f"does not decode: {reason}")
        for group in self.exact_duplicates:
            keep, *copies = group
            if len({label_of[p] for p in group}) > 1:
                for path in group:
                    others = "; ".join(p for p in group if p != path)
                    add("review-label", path, "the same file is filed under several movements", others)
            else:
                for path in copies:
                    add("delete", path, "exact copy (same bytes)", keep)
        for near in self.near_duplicates:
            if near.across_classes:
                add("review-label", near.b, f"near-duplicate under another movement (distance {near.distance})", near.a)
            else:
                add("review-duplicate", near.b, f"near-duplicate: re-encoded or resized copy? (distance {near.distance})",
                    near.a)
        for image in self.tiny():
            add("replace", image.path, f"{image.width}x{image.height}: shortest side under {self.min_side} px")
        for artist, classes in self.artists_in_several_classes().items():
            listed = ", ".join(f"{label} ({n})" for label, n in classes.items())
            add("review-artist", artist, f"artist filed under several movements: {listed}")
        counts = self.class_counts()
        for label in self.under_represented():
            add("collect-more", label, f"{counts[label]} images, under half the median class")
        for label, top in self.dominated().items():
            add("add-artists", label, f"{top['artist']} painted {top['share']:.0%} of the images: "
                "the class may teach one hand")
        return rows


def difference_hash(img: Image.Image) -> np.ndarray:
    """128-bit difference hash (16 bytes): signs of horizontal and vertical brightness steps.

    Survives re-encoding, resizing and mild colour changes; a different picture flips
    about half of the bits.
    """
    grey = img.convert("L")
    wide = np.asarray(grey.resize((HASH_SIDE + 1, HASH_SIDE), Image.Resampling.BOX), dtype=np.int16)
    tall = np.asarray(grey.resize((HASH_SIDE, HASH_SIDE + 1), Image.Resampling.BOX), dtype=np.int16)
    bits = np.concatenate([(wide[:, 1:] > wide[:, :-1]).ravel(), (tall[1:, :] > tall[:-1, :]).ravel()])
    return np.packbits(bits)


_POPCOUNT = np.array([bin(i).count("1") for i in range(256)], dtype=np.uint8)


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise bit distances between rows of two (n, 16) uint8 hash arrays."""
    if hasattr(np, "bitwise_count"):  # numpy >= 2
        xor = a.view(np.uint64)[:, None, :] ^ b.view(np.uint64)[None, :, :]
        return np.bitwise_count(xor).sum(axis=-1, dtype=np.int32)
    return _POPCOUNT[a[:, None, :] ^ b[None, :, :]].sum(axis=-1, dtype=np.int32)


def _pairs_within(hashes: np.ndarray, rows: np.ndarray, max_distance: int, block: int) -> list[tuple[int, int, int]]:
    """(i, j, distance), i < j, among `rows` of `hashes` within `max_distance` (all against all)."""
    pairs = []
    for start in range(0, len(rows), block):
        head = rows[start : start + block]
        distances = _hamming(hashes[head], hashes[rows])
        for r, c in zip(*np.nonzero(distances <= max_distance)):
            i, j = int(head[r]), int(rows[c])
            if i < j:
                pairs.append((i, j, int(distances[r, c])))
    return pairs


def near_duplicate_pairs(hashes: np.ndarray, max_distance: int, block: int = 256) -> list[tuple[int, int, int]]:
    """(i, j, distance) for every i < j within `max_distance` bits, sorted.

    Multi-index hashing keeps this far below all-pairs: the bits are cut into
    max_distance + 1 chunks, and by pigeonhole two hashes within max_distance agree exactly
    on at least one chunk, so only rows sharing a chunk value are compared (random hashes:
    about n^2 / 2^chunk_bits comparisons per chunk). Chunks narrower than MIN_CHUNK_BITS
    would bucket little, and all pairs are compared instead.
    """
    n, n_bits = len(hashes), 8 * hashes.shape[1]
    if n < 2:
        return []
    if n_bits // (max_distance + 1) < MIN_CHUNK_BITS:
        return sorted(_pairs_within(hashes, np.arange(n), max_distance, block))
    bits = np.unpackbits(hashes, axis=1)
    edges = np.linspace(0, n_bits, max_distance + 2).astype(int)
    found: set[tuple[int, int, int]] = set()
    for lo, hi in zip(edges[:-1], edges[1:]):
        keys = bits[:, lo:hi].astype(np.int64) @ (1 << np.arange(hi - lo, dtype=np.int64))
        order = np.argsort(keys, kind="stable")
        starts = np.flatnonzero(np.r_[True, keys[order][1:] != keys[order][:-1], True])
        for first, end in zip(starts[:-1], starts[1:]):
            if end - first > 1:
                found.update(_pairs_within(hashes, np.sort(order[first:end]), max_distance, block))
    return sorted(found)


def nearest_distances(hashes: np.ndarray, sample: int = NEAREST_SAMPLE, block: int = 256) -> np.ndarray:
    """Bits from each of up to `sample` rows (a fixed random choice; all when fewer) to its
    closest other row: the report's histogram, linear in the number of rows."""
    n = len(hashes)
    if n < 2:
        return np.zeros(0, np.int32)
    rows = np.sort(np.random.default_rng(0).permutation(n)[:sample])
    nearest = np.empty(len(rows), np.int32)
    for start in range(0, len(rows), block):
        head = rows[start : start + block]
        distances = _hamming(hashes[head], hashes)
        distances[np.arange(len(head)), head] = np.iinfo(np.int32).max  # not its own neighbour
        nearest[start : start + block] = distances.min(axis=1)
    return nearest


def _inspect(path: Path) -> np.ndarray:
    """Difference hash of one file; ImageLoadError when it does not fully decode."""
    return difference_hash(load_image(path, min_side=HASH_DECODE_SIDE))  # reads every byte: truncation shows


def check_dataset(
    roots: Roots,
    *,
    min_side: int = MIN_SIDE,
    near_distance: int = NEAR_DISTANCE,
    show_progress: bool = True,
    workers: int | None = None,
) -> DatasetCheck:
    """Examine every image under `roots` (DATA/<movement>/<artist>/<image>; several merge as
    one collection) without changing anything."""
    dataset: Dataset = scan_dataset(roots, show_progress=show_progress)
    records = dataset.records
    unreadable = list(dataset.unreadable)
    facts: list[ImageFacts] = []
    hashes: list[np.ndarray] = []

    def inspect(record: ImageRecord):
        try:  # the size is the scan's header reading; a file without one does not decode either
            return (*(record.size or (0, 0)), _inspect(dataset.abspath(record)))
        except ImageLoadError as exc:
            return str(exc)

    pool = ThreadPoolExecutor(workers or os.cpu_count() or 1)  # decoders release the GIL
    try:
        with stage("decode and hash"), progress_bar(len(records), "Decoding images", enabled=show_progress) as advance:
            for record, outcome in zip(records, pool.map(inspect, records)):
                advance(1)
                if isinstance(outcome, str):
                    unreadable.append((record.path, outcome))
                    continue
                width, height, digest = outcome
                facts.append(ImageFacts(record.path, record.label, record.artist, record.sha256, width, height))
                hashes.append(digest)
    finally:  # on Ctrl-C, drop the queued images instead of decoding them all first
        pool.shutdown(wait=False, cancel_futures=True)

    readable = {f.path for f in facts}
    exact = [
        sorted(r.path for r in group if r.path in readable)
        for group in dataset.duplicate_groups()
    ]
    exact = sorted(g for g in exact if len(g) > 1)
    matrix = np.stack(hashes) if hashes else np.zeros((0, 2 * HASH_SIDE * HASH_SIDE // 8), np.uint8)
    with stage("near-duplicate search"):
        pairs = near_duplicate_pairs(matrix, near_distance)
        nearest = nearest_distances(matrix)
    near = [
        NearDuplicate(facts[i].path, facts[j].path, d, facts[i].label != facts[j].label)
        for i, j, d in pairs
        if facts[i].sha256 != facts[j].sha256  # exact copies are reported as such
    ]
    near.sort(key=lambda p: (p.distance, p.a, p.b))
    labels = sorted({f.label for f in facts}) or dataset.labels
    return DatasetCheck(
        roots=dataset.roots, labels=labels, images=facts, unreadable=sorted(unreadable), exact_duplicates=exact,
        near_duplicates=near, nearest_distance=nearest.tolist(), min_side=min_side, near_distance=near_distance,
        ignored=dict(dataset.ignored), sizes=size_profile([r for r in records if r.path in readable]),
        files={f.path: dataset.files[f.path] for f in facts if f.path in dataset.files},
    )


def write_fix_plan(check: DatasetCheck, path: str | os.PathLike) -> int:
    """Write the suggested actions as CSV (action, path, class, reason, related), atomically;
    return how many there are."""
    rows = check.fix_plan()
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["action", "path", "class", "reason", "related"], lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_bytes(Path(path).expanduser(), buffer.getvalue().encode())
    return len(rows)

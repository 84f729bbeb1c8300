"""Scan a painting tree `DATA/<movement>/<artist>/.../<image>` into labelled records.

An image's identity is its path relative to DATA, so two artists may both own a
`1.jpg`. Its content hash ties it to cached features and exposes exact duplicates.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..errors import DatasetError
from ..progress import progress_bar
from .images import ImageInput, is_image_name, os_error_reason, source_name
from .labels import normalize_label

log = logging.getLogger("artstyle")

UNKNOWN_ARTIST = "unknown"


@dataclass(frozen=True)
class ImageRecord:
    """One painting: where it is, what it shows, who painted it, what its bytes hash to."""

    path: str  # relative to the dataset root, POSIX separators
    label: str  # normalised movement name
    artist: str  # artist folder name as written, or "unknown"
    sha256: str


@dataclass
class Dataset:
    """The images of one tree plus what was left out of it and why."""

    root: Path
    records: list[ImageRecord]
    labels: list[str]
    folders: dict[str, list[str]] = field(default_factory=dict)  # label -> folder names
    ignored: Counter = field(default_factory=Counter)  # reason -> count (hidden, not an image)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)

    def abspath(self, record: ImageRecord) -> Path:
        return self.root / record.path

    def class_counts(self) -> dict[str, int]:
        counts = Counter(r.label for r in self.records)
        return {label: counts.get(label, 0) for label in self.labels}

    def duplicate_groups(self) -> list[list[ImageRecord]]:
        """Groups of two or more records with identical bytes."""
        by_hash: dict[str, list[ImageRecord]] = defaultdict(list)
        for record in self.records:
            by_hash[record.sha256].append(record)
        return [group for group in by_hash.values() if len(group) > 1]

    def conflicting_duplicates(self) -> list[list[ImageRecord]]:
        """Duplicate groups whose copies sit in different classes (contradictory labels)."""
        return [g for g in self.duplicate_groups() if len({r.label for r in g}) > 1]

    def summary(self) -> dict:
        """JSON-ready description recorded in model bundles: the folder's name and counts,
        never its local path (a model folder travels)."""
        return {
            "name": self.root.resolve().name,
            "n_images": len(self.records),
            "n_artists": len({(r.label, r.artist) for r in self.records}),
            "class_counts": self.class_counts(),
            "ignored": dict(self.ignored),
            "unreadable": len(self.unreadable),
            "duplicate_groups": len(self.duplicate_groups()),
        }


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def content_key(source: ImageInput) -> str:
    """SHA-256 of a file's bytes, or of a PIL image's mode, size and pixels."""
    if isinstance(source, Image.Image):
        digest = hashlib.sha256(f"{source.mode}:{source.size}:".encode())
        digest.update(source.tobytes())
        return digest.hexdigest()
    return file_sha256(source)


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name in ("__MACOSX", "Thumbs.db", "desktop.ini")


def find_images(folder: str | os.PathLike, ignored: Counter | None = None) -> list[Path]:
    """Image files under `folder`, sorted; hidden and non-image files are counted in `ignored`."""
    ignored = ignored if ignored is not None else Counter()
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(folder):
        hidden_dirs = [d for d in dirnames if _is_hidden(d)]
        ignored["hidden"] += len(hidden_dirs)
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        for name in filenames:
            if _is_hidden(name):
                ignored["hidden"] += 1
            elif not is_image_name(name):
                ignored["not an image"] += 1
            else:
                found.append(Path(dirpath) / name)
    return sorted(found)


def scan_dataset(root: str | os.PathLike, *, show_progress: bool = True) -> Dataset:
    """Read the class folders of `root`, hash every image and report what was left out.

    Class folders whose names normalise to the same label (`pop_art`, `Pop Art`) merge.
    """
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    ignored: Counter = Counter()
    folders: dict[str, list[str]] = defaultdict(list)
    files: list[tuple[Path, str, str]] = []  # (absolute path, label, artist)
    for entry in sorted(root.iterdir()):
        if _is_hidden(entry.name):
            ignored["hidden"] += 1
            continue
        if not entry.is_dir():
            ignored["file outside class folders"] += 1
            continue
        label = normalize_label(entry.name)
        if not label:
            raise DatasetError(f"{entry}: folder name gives an empty class name")
        folders[label].append(entry.name)
        for path in find_images(entry, ignored):
            parts = path.relative_to(entry).parts
            artist = parts[0] if len(parts) > 1 else UNKNOWN_ARTIST
            files.append((path, label, artist))
    if not files:
        raise DatasetError(
            f"{root}: no images found; expected {root}/<movement>/<artist>/<image>"
        )
    for label, names in folders.items():
        if len(names) > 1:
            log.warning("folders %s all name the class %r: merged", ", ".join(names), label)

    records: list[ImageRecord] = []
    unreadable: list[tuple[str, str]] = []
    with progress_bar(len(files), "Hashing images", enabled=show_progress) as advance:
        for path, label, artist in files:
            rel = path.relative_to(root).as_posix()
            try:
                digest = file_sha256(path)
            except OSError as exc:
                unreadable.append((rel, os_error_reason(exc)))
            else:
                records.append(ImageRecord(rel, label, artist, digest))
            advance(1)
    labels = sorted({r.label for r in records})
    return Dataset(root, records, labels, dict(folders), ignored, unreadable)


@dataclass
class LabelledImages:
    """What training reads: records (label, artist, content hash), the image sources in
    the same order, a summary of the data for the model folder, and unreadable files."""

    records: list[ImageRecord]
    sources: list[ImageInput]
    summary: dict
    unreadable: list[tuple[str, str]] = field(default_factory=list)

    @property
    def keys(self) -> list[str]:
        return [r.sha256 for r in self.records]


def labelled_images(data, y=None, *, show_progress: bool = True) -> LabelledImages:
    """A painting tree (path or scanned `Dataset`), or images `data` with labels `y`, as
    `LabelledImages`. Ignored files and identical files under two movements are logged."""
    if y is None:
        dataset = data if isinstance(data, Dataset) else scan_dataset(data, show_progress=show_progress)
        if sum(dataset.ignored.values()):
            log.info("ignored %s", ", ".join(f"{n} {why}" for why, n in sorted(dataset.ignored.items())))
        for group in dataset.conflicting_duplicates():
            log.warning("identical files in different classes: %s", ", ".join(r.path for r in group))
        sources: list[ImageInput] = [dataset.abspath(r) for r in dataset.records]
        return LabelledImages(list(dataset.records), sources, dataset.summary(), dataset.unreadable)
    if isinstance(data, (str, os.PathLike)) or len(data) != len(y):
        raise DatasetError("fit(images, y) needs one label per image")
    records = [
        ImageRecord(source_name(src, i), normalize_label(str(label)), UNKNOWN_ARTIST, content_key(src))
        for i, (src, label) in enumerate(zip(data, y))
    ]
    return LabelledImages(records, list(data), {"name": None, "n_images": len(records)})

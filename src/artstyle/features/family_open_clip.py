"""The open_clip family: CLIP and SigLIP, image and text towers.

The image tower becomes a backbone through `ImageTower`, which gives it the interface
every artstyle network has (`forward_features` -> tokens, `forward_head` -> the pooled,
projected embedding, the space the text tower shares), so extraction, the ONNX export,
int8, heat-maps and fine-tuning treat it as any other network. The text tower stays
beside it (`TextTower`) for zero-shot: it never enters the image graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..errors import ArtstyleError
from .backbone import Backbone, BackboneInfo
from .preprocess import Preprocessing
from .weights_files import file_weights_id, load_weights
from .weights_hub import weights_file


class ImageTower(nn.Module):
    """An open_clip image tower (its own ViT, or a timm trunk for SigLIP) as a backbone."""

    def __init__(self, visual: nn.Module, output_dim: int):
        super().__init__()
        self.visual = visual
        self.num_features = output_dim
        self.timm = hasattr(visual, "trunk")

    def token_blocks(self) -> tuple[list[str], int]:
        if self.timm:
            trunk = self.visual.trunk
            return [f"visual.trunk.blocks.{i}" for i in range(len(trunk.blocks))], int(trunk.num_prefix_tokens)
        blocks = self.visual.transformer.resblocks
        return [f"visual.transformer.resblocks.{i}" for i in range(len(blocks))], 1  # the class token

    @property
    def embed_dim(self) -> int:
        return int(self.visual.trunk.embed_dim if self.timm else self.visual.transformer.width)

    def forward_features(self, batch: torch.Tensor) -> torch.Tensor:
        if self.timm:
            return self.visual.trunk.forward_features(batch)
        return self.visual.transformer(self.visual._embeds(batch))

    def forward_head(self, tokens: torch.Tensor, pre_logits: bool = True) -> torch.Tensor:
        if self.timm:
            return self.visual.head(self.visual.trunk.forward_head(tokens))
        pooled, _ = self.visual._pool(tokens)
        return pooled @ self.visual.proj if self.visual.proj is not None else pooled

    def group_matcher(self, coarse: bool = True) -> dict:
        """Parameter groups as timm names them: the stem, each block, then the head
        (what `--finetune --stages N` counts from the top)."""
        if self.timm:
            return {"stem": r"^visual\.trunk\.(?:cls_token|pos_embed|reg_token|patch_embed)",
                    "blocks": [(r"^visual\.trunk\.blocks\.(\d+)", None),
                               (r"^visual\.(?:trunk\.(?:norm|fc_norm|attn_pool|head)|head)", (99999,))]}
        return {"stem": r"^visual\.(?:class_embedding|positional_embedding|conv1|ln_pre)",
                "blocks": [(r"^visual\.transformer\.resblocks\.(\d+)", None),
                           (r"^visual\.(?:ln_post|proj)", (99999,))]}


class TextTower:
    """Prompts -> unit-length embeddings in the image tower's space, and the model's own
    logit scale (and bias, for SigLIP's sigmoid loss)."""

    def __init__(self, model: nn.Module, arch: str):
        self.model, self.arch = model, arch
        self.logit_scale = float(model.logit_scale.detach().exp())
        bias = getattr(model, "logit_bias", None)
        self.logit_bias = float(bias.detach()) if bias is not None else 0.0

    def encode(self, prompts: list[str], batch: int = 64) -> np.ndarray:
        import open_clip

        hub = (open_clip.get_model_config(self.arch) or {}).get("text_cfg", {}).get("hf_tokenizer_name")
        try:
            tokenizer = open_clip.get_tokenizer(self.arch)
        except ImportError as exc:  # SigLIP's tokenizer is transformers' (sentencepiece vocabulary)
            raise ArtstyleError(f"{self.arch}: its tokenizer needs {exc.name or 'transformers'} "
                                "(pip install 'artstyle[torch]')") from None
        except Exception as exc:  # the hub's tokenizer files, fetched once, then cached
            raise ArtstyleError(f"{self.arch}: its tokenizer files could not be read or fetched ({type(exc).__name__}); "
                                f"run once online to cache them (hub repository {hub})") from None
        out = []
        with torch.inference_mode():
            for start in range(0, len(prompts), batch):
                out.append(self.model.encode_text(tokenizer(prompts[start:start + batch]), normalize=True).float())
        return torch.cat(out).numpy()


def preprocessing(info: BackboneInfo, model: nn.Module) -> Preprocessing:
    """The pretrained configuration's views (open_clip's `pretrained.py` row over the
    architecture's defaults), as open_clip's own eval transform cuts them."""
    import open_clip

    config = {**open_clip.get_model_preprocess_cfg(model),
              **{k: v for k, v in open_clip.get_pretrained_cfg(info.arch, info.pretrained).items()
                 if k in ("mean", "std", "interpolation", "resize_mode")}}
    size = config["size"]
    return Preprocessing(size=int(size[0] if isinstance(size, (tuple, list)) else size), mean=tuple(config["mean"]),
                         std=tuple(config["std"]), interpolation=config.get("interpolation", "bicubic"),
                         resize_mode=config.get("resize_mode", "shortest"))


def load(info: BackboneInfo, weights: Path | None) -> Backbone:
    """CLIP or SigLIP with the published open_clip checkpoint (hub, or `--weights`), or a
    fine-tuned image tower (`backbone.safetensors`: the text tower then stays untrained)."""
    import logging

    from safetensors import SafetensorError
    from safetensors.torch import load as load_tensors

    try:
        import open_clip
    except ImportError:
        raise ArtstyleError(f"{info.name} needs open_clip: pip install 'artstyle[torch]'") from None
    path = weights_file(info, weights)
    data, weights_id = load_weights(path)  # the id of the very bytes loaded below
    logging.getLogger("root").disabled = True  # open_clip warns that no pretrained weights were loaded
    try:
        model = open_clip.create_model(info.arch, pretrained=None, force_quick_gelu=info.quick_gelu)
    finally:
        logging.getLogger("root").disabled = False
    try:
        state = load_tensors(data)
    except SafetensorError as exc:
        raise ArtstyleError(f"{path}: cannot read weights ({exc})") from None
    del data
    tower_only = all(k.startswith("visual.") for k in state)
    try:
        if tower_only:
            model.visual.load_state_dict({k[len("visual."):]: v for k, v in state.items()}, strict=True)
        else:
            model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ArtstyleError(f"{path}: weights do not fit {info.name} ({str(exc).splitlines()[0]})") from None
    model.eval().requires_grad_(False)
    if not tower_only:
        _TEXT[weights_id] = TextTower(model, info.arch)
    tower = ImageTower(model.visual, int(open_clip.get_model_config(info.arch)["embed_dim"]))
    return Backbone(info.name, preprocessing(info, model), weights_id, model=tower)


_TEXT: dict[str, TextTower] = {}  # weights id -> the text tower of the last checkpoint loaded with it


def text_tower(info: BackboneInfo, weights: Path | None) -> TextTower:
    """The text tower of `info`'s checkpoint (loaded now unless this process has it)."""
    path = weights_file(info, weights)
    weights_id = file_weights_id(path)
    if weights_id not in _TEXT:
        load(info, path)
    if weights_id not in _TEXT:
        raise ArtstyleError(f"{path}: holds an image tower only (a fine-tuned backbone): no text tower for zero-shot")
    return _TEXT[weights_id]

"""Random weights in a named backbone's published layout: what tests and speed benchmarks
pass as `--weights` offline, where no foundation checkpoint reaches.

The layout is not taken on trust from the library that builds the random network: the
tensor names and shapes of each published checkpoint are committed
(`assets/published_layouts.json`, `scripts/published_layouts.py`), and a library release
that builds anything else is refused here, as a real checkpoint would be on a user's
first load.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from ..errors import ArtstyleError
from .backbone import BackboneInfo
from .backbones import get_info

LAYOUTS = Path(__file__).resolve().parent.parent / "assets" / "published_layouts.json"


def published_state(info: BackboneInfo, seed: int = 0) -> dict:
    """`info`'s architecture at its published image size, randomly initialised by its
    library: open_clip's model for CLIP and SigLIP, timm's for DINOv2."""
    import torch

    torch.manual_seed(seed)
    if info.family == "open_clip":
        import open_clip

        logging.getLogger("root").disabled = True  # "no pretrained weights loaded"
        try:
            model = open_clip.create_model(info.arch, pretrained=None, force_quick_gelu=info.quick_gelu)
        finally:
            logging.getLogger("root").disabled = False
    elif info.family == "timm":
        import timm

        model = timm.create_model(f"{info.arch}.{info.pretrained}", pretrained=False, num_classes=0)
    else:
        raise ArtstyleError(f"{info.name}: its weights ship with artstyle; no random checkpoint needed")
    return {k: v.contiguous() for k, v in model.state_dict().items()}


def published_layout(info: BackboneInfo) -> list[tuple[str, tuple[int, ...]]]:
    """The committed (name, shape) of every tensor in `info`'s published checkpoint."""
    rows = json.loads(LAYOUTS.read_text())
    row = next((r for r in rows.values() if (r["hub"], r["file"]) == (info.hf_hub, info.filename)), None)
    if row is None:
        raise ArtstyleError(f"{info.name}: no published layout is recorded ({LAYOUTS.name})")
    return [(name, tuple(shape)) for name, shape in row["tensors"]]


def layout_of(state: dict) -> list[tuple[str, tuple[int, ...]]]:
    return sorted((name, tuple(t.shape)) for name, t in state.items())


def random_checkpoint(name: str, path: Path, seed: int = 0) -> Path:
    """`name`'s real architecture with random weights, written to `path` with exactly the
    tensor names and shapes of its published checkpoint. Its answers mean nothing; its
    layout, shapes, speed and code path are the real ones."""
    from safetensors.torch import save_file

    info = get_info(name)
    state = published_state(info, seed)
    built, published = layout_of(state), published_layout(info)
    if built != published:
        extra = sorted(set(built) - set(published))[:3]
        missing = sorted(set(published) - set(built))[:3]
        raise ArtstyleError(f"{name}: the installed library builds a layout other than the published checkpoint's "
                            f"(not published: {extra}; published, not built: {missing})")
    save_file(state, str(path))
    return path

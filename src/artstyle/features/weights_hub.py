"""Published checkpoints of the named foundation backbones: fetched once from the
Hugging Face hub (cached by `huggingface_hub`, with its progress bar), or a file the user
brings. Offline without a file, one line names the file to get and the option to pass it.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..errors import ArtstyleError
from .backbone import BackboneInfo


def weights_file(info: BackboneInfo, weights: Path | None) -> Path:
    """The checkpoint to load: `weights` when given (it must exist), else the hub's file."""
    if weights is not None:
        if not weights.is_file():
            raise ArtstyleError(f"{weights}: cannot read weights (no such file)")
        return weights
    if not info.hf_hub or not info.filename:
        raise ArtstyleError(f"{info.name}: no published weights to fetch; pass --weights FILE")
    where = f"https://huggingface.co/{info.hf_hub}/blob/main/{info.filename}"
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise ArtstyleError(f"{info.name}: fetching weights needs huggingface_hub (pip install 'artstyle[torch]'), "
                            f"or download {where} and pass --weights FILE (or set ARTSTYLE_WEIGHTS)") from None
    hub_log = logging.getLogger("huggingface_hub")
    level = hub_log.level
    hub_log.setLevel(logging.ERROR)  # its warning of each failed request: the one line below says it
    try:
        return Path(hf_hub_download(info.hf_hub, info.filename))
    except Exception as exc:  # offline, refused, gone: the hub's errors come in many types
        raise ArtstyleError(f"{info.name}: could not fetch its weights ({type(exc).__name__}); download {where} "
                            f"({info.download_mb} MB) and pass --weights FILE (or set ARTSTYLE_WEIGHTS)") from None
    finally:
        hub_log.setLevel(level)


def random_checkpoint(name: str, path: Path, seed: int = 0) -> Path:
    """`name`'s real architecture with random weights, written to `path` in the layout its
    checkpoint is published in (open_clip's state dict for CLIP and SigLIP, timm's for
    DINOv2): what tests and speed benchmarks pass as `--weights` offline. Its answers mean
    nothing; its shapes, speed and code path are the real ones."""
    import logging

    import torch
    from safetensors.torch import save_file

    from .backbones import get_info

    info = get_info(name)
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
        raise ArtstyleError(f"{name}: its weights ship with artstyle; no random checkpoint needed")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return path

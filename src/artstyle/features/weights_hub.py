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

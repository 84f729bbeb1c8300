"""Errors a user can act on. The CLI prints each as one line, never a traceback."""

from __future__ import annotations


class ArtstyleError(Exception):
    """Base class: something the user can fix (a path, a file, an option)."""


class ImageLoadError(ArtstyleError):
    """An image could not be decoded; the message is the reason, without the path.

    `kind` sorts the reasons for doors that answer with a status (the REST API):
    "not_image" (no image format recognised, empty file), "too_large" (refused as a
    decompression bomb), "undecodable" (an image whose data is broken) or "unreadable"
    (the file cannot be opened).
    """

    KINDS = ("not_image", "too_large", "undecodable", "unreadable")

    def __init__(self, reason: str, kind: str = "undecodable"):
        super().__init__(reason)
        self.kind = kind if kind in self.KINDS else "undecodable"


class DatasetError(ArtstyleError):
    """A painting folder cannot be used as given."""


class BundleError(ArtstyleError):
    """A model folder is missing, corrupt or from an unknown format version."""


class NotFittedError(ArtstyleError):
    """A classifier was used before fit() or load()."""


class DownloadError(ArtstyleError):
    """A dataset archive could not be fetched, verified or unpacked safely."""


TORCH_INSTALL = "pip install 'artstyle[torch]'"


def require_torch(purpose: str) -> None:
    """Refuse, in one line that says what to install, what the light install cannot do:
    `purpose` needs PyTorch (and timm), which `pip install artstyle` leaves out."""
    missing = missing_torch()
    if missing:
        raise ArtstyleError(f"{purpose} needs PyTorch ({' and '.join(missing)} not installed): {TORCH_INSTALL}")


def missing_torch() -> list[str]:
    """Which of torch and timm (the torch extra) this install lacks."""
    return [name for name in ("torch", "timm") if not _installed(name)]


def _installed(name: str) -> bool:
    import importlib.util

    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # ValueError: blocked (`sys.modules[name] = None`)
        return False

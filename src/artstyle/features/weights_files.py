"""Weights files read once and hashed once: a foundation checkpoint is 0.1-0.8 GB, and its
digest both finds its cached graph and checks it is the file a model was trained with.
A leaf module: the registry, the family loaders and the torch half (`networks`) import it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import ArtstyleError


def _file_key(path: Path) -> tuple[str, int, int]:
    try:
        stat = path.stat()
    except OSError as exc:
        raise ArtstyleError(f"{path}: cannot read weights ({exc.strerror or exc})") from None
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


def file_weights_id(path: Path) -> str:
    """Id of a weights file: its digest, hashed once per file version in this process (a
    foundation checkpoint is 0.1-0.8 GB). The bytes read for it wait for the loader that
    asks next (`load_weights`), so a first load reads the file once, not twice."""
    key = _file_key(path)
    if key not in _FILE_IDS:
        data = read_weights(path)
        _FILE_IDS[key] = weights_id_of(data)
        _READ[key] = data
    return _FILE_IDS[key]


def load_weights(path: Path) -> tuple[bytes, str]:
    """A weights file's bytes and id: read once and hashed once, even when its id was asked
    for first (to find its cached graph), the id always of the very bytes returned."""
    key = _file_key(path)
    data = _READ.pop(key, None)
    if data is None:
        data = read_weights(path)
        _FILE_IDS[key] = weights_id_of(data)
    return data, _FILE_IDS[key]


def forget_read_weights() -> None:
    """Drop bytes read for an id that no loader took (the backbone came from its cached graph)."""
    _READ.clear()


_FILE_IDS: dict[tuple[str, int, int], str] = {}
_READ: dict[tuple[str, int, int], bytes] = {}  # read to be hashed, kept for the loader that follows


def read_weights(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ArtstyleError(f"{path}: cannot read weights ({exc.strerror or exc})") from None


def weights_id_of(data: bytes) -> str:
    """Id of weights read into memory: the digest of exactly the bytes that are loaded."""
    return f"file:{hashlib.sha256(data).hexdigest()[:16]}"



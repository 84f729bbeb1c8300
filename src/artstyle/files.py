"""Files written safely: atomic replacement, normal permissions, artstyle's user cache folder.

Shared by every stage that writes (caches, model folders, reports, downloads): a run
killed at any moment leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs


def user_cache_root() -> tuple[Path, bool]:
    """artstyle's user cache folder, and whether the user chose it (`$ARTSTYLE_CACHE_DIR`)
    rather than the platform's default."""
    env = os.environ.get("ARTSTYLE_CACHE_DIR")
    return (Path(env).expanduser(), True) if env else (Path(platformdirs.user_cache_dir("artstyle")), False)


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(path: str | os.PathLike, directory: bool = False) -> None:
    """Give a temp file/folder the permissions a normal create would (mkstemp makes them private)."""
    os.chmod(path, (0o777 if directory else 0o666) & ~_current_umask())


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers see the old file or the new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        public_mode(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

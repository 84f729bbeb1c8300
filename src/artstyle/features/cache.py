"""Per-image feature cache: one small .npy file per (image content, feature recipe).

Files are written to a temporary name and renamed into place, so a run killed at any
moment leaves only complete entries; the next run picks up where it stopped. Entries
are read with allow_pickle=False: a cache file can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from io import BytesIO
from pathlib import Path

import numpy as np
import platformdirs


def user_cache_root() -> tuple[Path, bool]:
    """artstyle's user cache folder, and whether the user chose it (`$ARTSTYLE_CACHE_DIR`)
    rather than the platform's default."""
    env = os.environ.get("ARTSTYLE_CACHE_DIR")
    return (Path(env).expanduser(), True) if env else (Path(platformdirs.user_cache_dir("artstyle")), False)


def default_cache_dir() -> Path:
    """`$ARTSTYLE_CACHE_DIR`, else `features/` in the platform's user cache folder."""
    root, chosen = user_cache_root()
    return root if chosen else root / "features"


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


class FeatureCache:
    """Embeddings of one feature recipe, keyed by the image's content hash."""

    def __init__(self, root: str | os.PathLike, recipe: str):
        self.recipe = recipe
        self.dir = Path(root).expanduser() / hashlib.sha256(recipe.encode()).hexdigest()[:20]
        self.dir.mkdir(parents=True, exist_ok=True)
        meta = self.dir / "recipe.json"
        if not meta.exists():
            atomic_write_bytes(meta, json.dumps({"recipe": recipe}).encode())

    def _path(self, key: str) -> Path:
        return self.dir / key[:2] / f"{key}.npy"

    def get(self, key: str) -> np.ndarray | None:
        """The cached vector, or None when absent or unreadable (it is then recomputed)."""
        path = self._path(key)
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError, EOFError):
            return None

    def put(self, key: str, vector: np.ndarray) -> None:
        buffer = BytesIO()
        np.save(buffer, np.asarray(vector, dtype=np.float32), allow_pickle=False)
        atomic_write_bytes(self._path(key), buffer.getvalue())

    def __len__(self) -> int:
        return sum(1 for _ in self.dir.glob("*/*.npy"))

"""Per-image feature cache: one small .npy file per (image content, feature recipe).

Files are written to a temporary name and renamed into place, so a run killed at any
moment leaves only complete entries; the next run picks up where it stopped. Entries
are read with allow_pickle=False: a cache file can never run code.
"""

from __future__ import annotations

import hashlib
import json
import os
from io import BytesIO
from pathlib import Path

import numpy as np

from ..files import atomic_write_bytes, user_cache_root


def default_cache_dir() -> Path:
    """`$ARTSTYLE_CACHE_DIR`, else `features/` in the platform's user cache folder."""
    root, chosen = user_cache_root()
    return root if chosen else root / "features"


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

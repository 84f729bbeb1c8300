"""Movements as text: the prompts that name them, their ensembles, and their embeddings by
an image+text backbone's text tower (cached). What zero-shot models and the text prior
of trained ones share; imports nothing of either.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from ..data.labels import PANDORA_MOVEMENTS
from ..errors import ArtstyleError, require_torch
from ..files import atomic_write_bytes, user_cache_root

log = logging.getLogger("artstyle")

# One movement, several phrasings: their mean embedding is steadier than any one. The name
# always stands as a noun ("of impressionism", "the early renaissance movement"), so every
# movement reads grammatically: no "a impressionism painting", whatever a user's label.
TEMPLATES = (
    "a painting in the style of {}.",
    "a painting of the {} movement.",
    "an artwork of {}.",
    "a famous painting of {}.",
    "a detail of a painting of {}.",
    "a reproduction of a painting, {}.",
    "{}, a movement in the history of art.",
)
def parse_labels(text: str | None) -> list[str]:
    """"ukiyo-e, art nouveau, ..." -> the movements to choose among (the 18 of Pandora18k
    when None): as written, trimmed, each once."""
    if text is None:
        return list(PANDORA_MOVEMENTS)
    labels: list[str] = []
    for part in text.split(","):
        label = " ".join(part.split())
        if label and label.casefold() not in {x.casefold() for x in labels}:
            labels.append(label)
    if len(labels) < 2:
        raise ArtstyleError(f"--labels {text!r}: name at least two movements, separated by commas")
    return labels


def prompts(label: str) -> list[str]:
    return [template.format(label) for template in TEMPLATES]


def ensemble(unit: np.ndarray, groups: list[int]) -> np.ndarray:
    """Unit embeddings of consecutive prompt groups (sizes `groups`) -> one unit row each:
    the mean of its prompts, renormalised."""
    rows, start = [], 0
    for size in groups:
        mean = unit[start:start + size].mean(axis=0)
        rows.append(mean / max(float(np.linalg.norm(mean)), 1e-12))
        start += size
    return np.stack(rows).astype(np.float32)


def text_embeddings(backbone: str, weights, weights_id: str, texts: list[str]) -> tuple[np.ndarray, float, float]:
    """(unit embeddings of `texts`, logit scale, logit bias) from `backbone`'s text tower,
    cached per weights and texts (a few kB: always, whatever caches features)."""
    from safetensors.numpy import load, save

    path = user_cache_root()[0] / "zero-shot" / f"{cache_key([backbone, weights_id, texts])}.safetensors"
    if path.is_file():
        try:
            t = load(path.read_bytes())
            return t["embeddings"], float(t["logit_scale"][0]), float(t["logit_bias"][0])
        except Exception:  # a damaged entry is computed again
            log.info("%s: damaged zero-shot cache entry, recomputed", path)
    require_torch(f"zero-shot with new labels on {backbone} (its text tower; these prompts are not cached here)")
    from ..features.backbones import get_info
    from ..features.family_open_clip import text_tower

    tower = text_tower(get_info(backbone), Path(weights).expanduser() if weights else None)
    embeddings = tower.encode(texts)
    atomic_write_bytes(path, save({"embeddings": embeddings, "logit_scale": np.array([tower.logit_scale], np.float32),
                                   "logit_bias": np.array([tower.logit_bias], np.float32)}))
    return embeddings, tower.logit_scale, tower.logit_bias


def cache_key(parts: list) -> str:
    """A short digest of what a cached text result depends on."""
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:24]

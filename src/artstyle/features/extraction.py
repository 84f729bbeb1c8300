"""Feature extraction: images -> one vector per image (backbone + recipe), batched and cached.

Decoding runs in DataLoader worker processes while the network works on the previous
batch; every finished batch is cached at once, so an interrupted run loses at most one
batch of work.
"""

from __future__ import annotations

import hashlib
import os
import signal
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch
from PIL import Image

from ..data.dataset import content_key
from ..data.images import ImageInput, load_image, os_error_reason
from ..errors import ImageLoadError
from ..progress import progress_bar
from .backbones import Backbone
from .cache import FeatureCache
from .preprocess import Preprocessing
from .recipes import FeatureRecipe

DEFAULT_BATCH_SIZE = 32
INFERENCE_CHUNK = 8  # views per forward pass: small batches stay in cache (measured faster on CPU, both engines)


class FeatureExtractor:
    """One backbone under one recipe: a (B, views, 3, s, s) batch in, (B, dim) vectors out.

    `preprocessing` defaults to the backbone's own with the recipe's grid; a loaded
    model passes the one it was trained with, which is authoritative.
    """

    def __init__(self, backbone: Backbone, recipe: FeatureRecipe, preprocessing: Preprocessing | None = None):
        self.backbone = backbone
        self.recipe = recipe
        self.preprocessing = preprocessing or replace(backbone.preprocessing, grid=recipe.grid)
        self.dim = recipe.dim(backbone.feature_dim, backbone.stats_dim)

    def identity(self) -> str:
        """Cache key: network, weights, views and what is pooled from them."""
        b = self.backbone
        return f"{b.name}|{b.weights_id}|{self.preprocessing.fingerprint()}|{self.recipe.name}"

    def __call__(self, batch: torch.Tensor, chunk: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        n_images, n_views = batch.shape[:2]
        flat = batch.reshape(n_images * n_views, *batch.shape[2:])
        pooled, stats = [], []
        chunk = min(chunk, INFERENCE_CHUNK)
        for start in range(0, len(flat), chunk):  # bounded activation memory
            p, st = self.backbone.embed(flat[start : start + chunk], stats=self.recipe.stats)
            pooled.append(p.float())
            if st is not None:
                stats.append(st)
        emb = torch.cat(pooled).reshape(n_images, n_views, -1)
        view_stats = torch.cat(stats).reshape(n_images, n_views, -1) if stats else None
        return pool_views(emb, view_stats).numpy()


def pool_views(embeddings: torch.Tensor, stats: torch.Tensor | None) -> torch.Tensor:
    """(images, views, dim) embeddings -> one vector per image: the global view, then the
    mean and max over the tiles when there are tiles, then the view-averaged statistics."""
    parts = [embeddings[:, 0]]
    if embeddings.shape[1] > 1:
        tiles = embeddings[:, 1:]
        parts += [tiles.mean(dim=1), tiles.amax(dim=1)]
    if stats is not None:
        parts.append(stats.mean(dim=1))
    return torch.cat(parts, dim=1)


@dataclass
class Extraction:
    """Features for every input row; rows in `errors` (index -> reason) are zeros."""

    features: np.ndarray
    errors: dict[int, str] = field(default_factory=dict)
    n_cached: int = 0
    n_computed: int = 0

    @property
    def ok(self) -> np.ndarray:
        mask = np.ones(len(self.features), dtype=bool)
        mask[list(self.errors)] = False
        return mask


class _DecodeDataset(torch.utils.data.Dataset):
    """Decode + preprocess one image; failures travel as data, not exceptions."""

    def __init__(self, sources: Sequence[ImageInput], preprocessing: Preprocessing):
        self.sources = sources
        self.preprocessing = preprocessing

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> tuple[int, np.ndarray | None, str]:
        try:
            img = load_image(self.sources[index], min_side=self.preprocessing.min_side)
            return index, self.preprocessing(img), ""
        except ImageLoadError as exc:
            return index, None, str(exc)


def ignore_interrupts(_worker_id: int) -> None:
    """DataLoader workers leave Ctrl-C to the main process, which stops them; otherwise a
    worker caught mid-transfer prints a traceback of its own."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _collate(items: list[tuple[int, np.ndarray | None, str]]):
    good = [(i, arr) for i, arr, _ in items if arr is not None]
    failed = [(i, reason) for i, arr, reason in items if arr is None]
    batch = torch.from_numpy(np.stack([arr for _, arr in good])) if good else None
    return [i for i, _ in good], batch, failed


def _auto_workers(n_images: int, batch_size: int) -> int:
    if n_images <= batch_size:
        return 0  # starting a process costs more than decoding one batch
    return max(1, min(2, (os.cpu_count() or 2) - 1))


# (sources, extractor, batch size, workers) -> batches of (row indices into sources,
# their vectors, [(row, reason)] for rows that failed)
Batches = Iterator[tuple[list[int], np.ndarray, list[tuple[int, str]]]]
Runner = Callable[[Sequence[ImageInput], "FeatureExtractor", int, "int | None"], Batches]


def local_batches(todo: Sequence[ImageInput], extractor: FeatureExtractor, batch_size: int,
                  workers: int | None) -> Batches:
    """Decode in DataLoader worker processes, run the network here."""
    workers = _auto_workers(len(todo), batch_size) if workers is None else workers
    loader = torch.utils.data.DataLoader(
        _DecodeDataset(todo, extractor.preprocessing),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=_collate,
        prefetch_factor=2 if workers else None,
        worker_init_fn=ignore_interrupts,
    )
    for indices, batch, failed in loader:
        embedded = extractor(batch, chunk=batch_size) if batch is not None else np.zeros((0, extractor.dim), np.float32)
        yield indices, embedded, failed


def extract_features(
    sources: Sequence[ImageInput],
    extractor: FeatureExtractor,
    *,
    keys: Sequence[str] | None = None,
    cache: FeatureCache | None = None,
    batch_size: int = DEFAULT_BATCH_SIZE,
    workers: int | None = None,
    show_progress: bool = True,
    description: str = "Extracting features",
    runner: Runner | None = None,
) -> Extraction:
    """Feature vectors for `sources` (paths or PIL images), reusing and filling `cache`.

    `keys` are content hashes of the sources when already known (the dataset scan
    computes them); identical images are decoded once. `runner` computes the vectors
    the cache lacks (default `local_batches`; `ray_extraction.RayRunner` on a cluster).
    """
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    n = len(sources)
    features = np.zeros((n, extractor.dim), dtype=np.float32)
    result = Extraction(features)
    if n == 0:
        return result
    if keys is None:
        keys = []
        for i, source in enumerate(sources):
            try:
                keys.append(content_key(source))
            except OSError as exc:
                keys.append("")
                result.errors[i] = os_error_reason(exc)
    rows_by_key: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if i not in result.errors:
            rows_by_key.setdefault(key, []).append(i)

    pending: list[str] = []
    for key, rows in rows_by_key.items():
        vector = cache.get(key) if cache is not None else None
        if vector is not None and vector.shape == (extractor.dim,):
            features[rows] = vector
            result.n_cached += len(rows)
        else:
            pending.append(key)

    todo = [sources[rows_by_key[key][0]] for key in pending]
    runner = runner or local_batches
    with progress_bar(len(todo), description, enabled=show_progress) as advance:
        for indices, embedded, failed in runner(todo, extractor, batch_size, workers):
            for j, vector in zip(indices, embedded):
                key = pending[j]
                features[rows_by_key[key]] = vector
                result.n_computed += len(rows_by_key[key])
                if cache is not None:
                    cache.put(key, vector)
            for j, reason in failed:
                for row in rows_by_key[pending[j]]:
                    result.errors[row] = reason
            advance(len(indices) + len(failed))
    return result


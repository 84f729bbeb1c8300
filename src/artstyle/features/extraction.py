"""Feature extraction: images -> one vector per image (backbone + recipe), batched and cached.

Images go in small groups to parallel lanes (threads: Pillow, numpy and ONNX Runtime
release the GIL, and nothing is copied between processes), each of which decodes its
group, cuts the views and runs the network on them; every finished group is cached at
once, so an interrupted run loses at most a few groups of work. Nothing here imports
torch.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice

import numpy as np

from ..data.dataset import content_key
from ..data.images import ImageInput, load_image, os_error_reason
from ..errors import ArtstyleError, ImageLoadError
from ..progress import progress_bar
from .backbones import Backbone, cpu_count
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
        if recipe.stats and backbone.stat_strides != recipe.stat_strides:
            raise ArtstyleError(f"{backbone.name}: reads texture statistics at strides {backbone.stat_strides}, recipe "
                                f"{recipe.name!r} at {recipe.stat_strides}: load it with stat_strides=recipe.stat_strides")
        self.backbone = backbone
        self.recipe = recipe
        self.preprocessing = preprocessing or recipe.preprocessing(backbone.preprocessing)
        self.dim = recipe.dim(backbone.feature_dim, backbone.stats_dim)

    def identity(self) -> str:
        """Cache key: network, weights, views, what is pooled from them and, for an int8
        graph, which one (fp32 keys are those of before int8 existed)."""
        b = self.backbone
        key = f"{b.name}|{b.weights_id}|{self.preprocessing.fingerprint()}|{self.recipe.name}"
        return key if b.precision == "fp32" else f"{key}|{b.precision}:{b.graphs.digest[:16]}"

    def __call__(self, batch: np.ndarray, chunk: int = DEFAULT_BATCH_SIZE, threads: int | None = None) -> np.ndarray:
        """`threads`: the engine's threads for this call (None: the backbone's default).
        Tile views that are copies of view 0 (a picture too small for tiles) are not run
        again: the network embeds view 0 once and the copies share its embedding."""
        n_images, n_views = batch.shape[:2]
        whole = np.array([repeats_first_view(views) for views in batch], bool)
        run = np.ones((n_images, n_views), bool)
        run[whole, 1:] = False
        flat = batch[run]
        pooled, stats = [], []
        chunk = min(chunk, INFERENCE_CHUNK)
        for start in range(0, len(flat), chunk):  # bounded activation memory
            p, st = self.backbone.embed(flat[start : start + chunk], stats=self.recipe.stats, threads=threads)
            pooled.append(p)
            if st is not None:
                stats.append(st)
        emb = _unflatten(np.concatenate(pooled), run)
        view_stats = _unflatten(np.concatenate(stats), run) if stats else None
        return pool_views(emb, view_stats)


def repeats_first_view(views: np.ndarray) -> bool:
    """Whether every tile view is a copy of view 0 (a picture too small for tiles)."""
    return len(views) > 1 and all(np.array_equal(v, views[0]) for v in views[1:])


def _unflatten(values: np.ndarray, run: np.ndarray) -> np.ndarray:
    """(images, views, dim) from the rows of the views that ran; a view that did not run
    takes view 0's row."""
    out = np.empty((*run.shape, values.shape[1]), values.dtype)
    out[run] = values
    skipped = ~run
    out[skipped] = np.broadcast_to(out[:, :1], out.shape)[skipped]
    return out


def pool_views(embeddings, stats, xp=np):
    """(images, views, dim) embeddings -> one vector per image: the global view, then the
    mean and max over the tiles when there are tiles, then the view-averaged statistics.
    `xp` is the array module: numpy here; `export` passes torch to trace the same pooling."""
    parts = [embeddings[:, 0]]
    if embeddings.shape[1] > 1:
        tiles = embeddings[:, 1:]
        parts += [xp.mean(tiles, axis=1), xp.amax(tiles, axis=1)]
    if stats is not None:
        parts.append(xp.mean(stats, axis=1))
    return xp.concatenate(parts, axis=1)


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


Decoded = tuple[np.ndarray | None, str]  # the image's views, or why it has none


def decode_views(source: ImageInput, preprocessing: Preprocessing) -> Decoded:
    """Decode one image and cut its views; a failure travels as data, not an exception."""
    try:
        return preprocessing(load_image(source, min_side=preprocessing.min_side)), ""
    except ImageLoadError as exc:
        return None, str(exc)


Group = tuple[list[int], np.ndarray, list[tuple[int, str]]]  # rows embedded, their vectors, [(row, reason)]


def embed_group(sources: Sequence[ImageInput], rows: Sequence[int], extractor: FeatureExtractor,
                threads: int | None = None) -> Group:
    """Decode `sources[rows]`, cut their views and embed them in one go; an image that
    cannot be read is reported with its reason instead."""
    decoded = [decode_views(sources[i], extractor.preprocessing) for i in rows]
    good = [(i, views) for i, (views, _) in zip(rows, decoded) if views is not None]
    failed = [(i, reason) for i, (views, reason) in zip(rows, decoded) if views is None]
    vectors = (extractor(np.stack([views for _, views in good]), threads=threads) if good
               else np.zeros((0, extractor.dim), np.float32))
    return [i for i, _ in good], vectors, failed


def default_lanes(n_images: int) -> int:
    """Parallel lanes: one per CPU (at most 8), none beyond the images there are."""
    return max(1, min(cpu_count(), 8, n_images))


# (sources, extractor, batch size, lanes) -> groups of rows into sources (see `Group`)
Batches = Iterator[Group]
Runner = Callable[[Sequence[ImageInput], "FeatureExtractor", int, "int | None"], Batches]


def local_batches(todo: Sequence[ImageInput], extractor: FeatureExtractor, batch_size: int,
                  workers: int | None) -> Batches:
    """`workers` lanes (None: `default_lanes`; 0 or 1: here, one group at a time), each
    decoding a group of images and running the network on them with its share of the
    cores; groups come back in order. On CPU, lanes that share nothing beat one network
    spread over every core beside decode threads: no thread waits at the network's sync
    points while decoding holds a core (measured in benchmarks/extract.py)."""
    lanes = default_lanes(len(todo)) if workers is None else max(1, workers)
    threads = max(1, cpu_count() // lanes)
    size = max(1, min(batch_size, INFERENCE_CHUNK // extractor.preprocessing.n_views))  # a forward pass or so
    groups = [range(start, min(start + size, len(todo))) for start in range(0, len(todo), size)]

    def run(rows: range) -> Group:
        return embed_group(todo, rows, extractor, threads)

    if lanes == 1:
        yield from map(run, groups)
        return
    pool = ThreadPoolExecutor(lanes, thread_name_prefix="artstyle-lane")
    try:
        pending: deque = deque()
        upcoming = iter(groups)
        for rows in islice(upcoming, 2 * lanes):
            pending.append(pool.submit(run, rows))
        while pending:
            batch = pending.popleft().result()
            for rows in islice(upcoming, 1):
                pending.append(pool.submit(run, rows))
            yield batch
    finally:  # an interrupted or failed run does not wait for the groups queued behind it
        pool.shutdown(wait=False, cancel_futures=True)


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


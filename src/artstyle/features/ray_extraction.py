"""Feature extraction on a Ray cluster (optional extra `artstyle[ray]`).

The driver keeps what it always does (content keys, the feature cache, the feature
matrix); only the images the cache lacks go to Ray Data, where actors that each load the
network once decode and embed them and stream the vectors back. The same extractor
(backbone, weights, recipe, preprocessing) runs there, so the vectors equal the local
ones and land in the cache under the same keys. Nothing here is imported without `--ray`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.images import ImageInput, Resized
from ..errors import ArtstyleError
from .backbone import cpu_count
from .extraction import Batches, FeatureExtractor, embed_group, local_batches
from .graph_cache import BundledGraph

log = logging.getLogger("artstyle")

LOCAL = "local"  # start a Ray on this machine; anything else is an address for ray.init


def connect(address: str | None) -> None:
    """Join the Ray cluster at `address` ("auto": the one this machine belongs to), or
    start one here for `"local"`/None, with the CPUs this process may use (Ray would count
    the machine's: under `taskset` or a CPU-pinned job that means actors waiting on each
    other); a session already open is reused."""
    try:
        import ray
    except ImportError:
        raise ArtstyleError("--ray needs Ray Data: pip install 'artstyle[ray]'") from None
    if ray.is_initialized():
        return
    local = address in (None, LOCAL)
    ray.init(address=None if local else address, num_cpus=cpu_count() if local else None, include_dashboard=False,
             log_to_driver=False, configure_logging=False)


def cpus() -> int:
    """CPUs the cluster offers: one actor each by default."""
    import ray

    return max(1, int(ray.cluster_resources().get("CPU", 1)))


@dataclass(frozen=True)
class ExtractorSpec:
    """What an actor needs to build the driver's extractor: names and files, not objects."""

    backbone: str
    weights: str | None
    recipe: str
    preprocessing: dict
    engine: str
    graph: BundledGraph | None = None  # an int8 graph, which the actors run instead of the network

    @classmethod
    def of(cls, extractor: FeatureExtractor, weights: str | os.PathLike | None, engine: str) -> ExtractorSpec:
        b = extractor.backbone
        return cls(b.name, None if weights is None else str(weights), extractor.recipe.name,
                   extractor.preprocessing.to_dict(), engine, b.graphs if b.precision != "fp32" else None)

    def build(self) -> FeatureExtractor:
        from .backbones import load_backbone
        from .preprocess import Preprocessing
        from .recipes import get_recipe

        recipe = get_recipe(self.recipe)
        backbone = load_backbone(self.backbone, self.weights, engine=self.engine, graphs=self.graph,
                                 stat_strides=recipe.stat_strides)
        return FeatureExtractor(backbone, recipe, Preprocessing.from_dict(self.preprocessing))


class _Embedder:
    """A Ray Data actor: builds the extractor once, then embeds batches of paths."""

    def __init__(self, spec: ExtractorSpec, threads: int = 1):
        self.extractor = spec.build()
        self.extractor.backbone.threads = threads

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        paths: list[ImageInput] = [Resized(str(path), int(side)) if side else str(path)
                                   for path, side in zip(batch["path"], batch["side"])]
        rows, embedded, failed = embed_group(paths, range(len(paths)), self.extractor)
        vectors = np.zeros((len(paths), self.extractor.dim), np.float32)
        vectors[rows] = embedded
        errors = np.full(len(paths), "", dtype=object)
        for row, reason in failed:
            errors[row] = reason
        return {"row": batch["row"], "vector": vectors, "error": errors}


@dataclass
class RayRunner:
    """An `extract_features` runner that embeds on Ray Data (see the module docstring).
    `actors` None: one per CPU of the cluster."""

    spec: ExtractorSpec
    address: str | None = None
    actors: int | None = None

    def __call__(self, todo: Sequence[ImageInput], extractor: FeatureExtractor, batch_size: int,
                 workers: int | None) -> Batches:
        if not todo:
            return
        if not all(isinstance(s, (str, os.PathLike, Resized)) for s in todo):  # in-memory images stay here
            log.info("in-memory images are embedded locally, not on Ray")
            yield from local_batches(todo, extractor, batch_size, workers)
            return
        connect(self.address)
        import ray.data

        actors = self.actors or cpus()
        dataset = ray.data.from_items([  # a shrunk view travels as its file and side (0: as it is)
            {"row": i, "path": os.fspath(s.path), "side": s.short_side} if isinstance(s, Resized)
            else {"row": i, "path": os.fspath(s), "side": 0} for i, s in enumerate(todo)])
        embedded = dataset.map_batches(_Embedder, fn_constructor_kwargs={"spec": self.spec}, batch_size=batch_size,
                                       compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=1,
                                       batch_format="numpy")
        for batch in embedded.iter_batches(batch_size=None, batch_format="numpy"):
            good = batch["error"] == ""
            rows = batch["row"]
            yield ([int(r) for r in rows[good]], batch["vector"][good],
                   [(int(r), str(e)) for r, e in zip(rows[~good], batch["error"][~good])])


def ray_runner(extractor: FeatureExtractor, weights, engine: str, address: str | None) -> RayRunner:
    """The runner for one of a classifier's extractors."""
    return RayRunner(ExtractorSpec.of(extractor, weights, engine), address)

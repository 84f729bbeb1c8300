"""Similar paintings: an index of the training paintings' feature vectors, so an answer
can be checked against the paintings the model learnt it from.

Vectors are the model's own features, L2-normalised and reduced by PCA to at most
`MAX_DIM` dimensions (an 18k index stays ~9 MB and exact search takes a millisecond);
similarity is the cosine in that space. Beyond `ANN_MIN` paintings a faiss HNSW graph
(optional extra `artstyle[ann]`) answers instead of exact search. Everything is stored as
safetensors (vectors, thumbnails, rows as JSON metadata) or faiss's own binary format:
no pickle.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ..data.dataset import LabelledImages, file_sha256
from ..data.images import load_image
from ..data.labels import humanise_artist
from ..errors import ArtstyleError, ImageLoadError
from ..progress import progress_bar

log = logging.getLogger("artstyle")

MAX_DIM = 256
THUMBNAIL_SIDE = 128
ANN_MIN = 100_000  # below this, exact search answers in milliseconds
PCA_SAMPLE = 50_000  # rows the projection is fitted on (enough for 256 components)
HNSW_NEIGHBOURS, HNSW_SEARCH = 32, 96  # graph degree; candidates per query (recall@5 >= 0.95)
ROW_FIELDS = ("movement", "artist", "file", "sha256")


SAME_PICTURE = 0.999  # cosine from which a training painting is taken for the query itself (re-saved, resized)


@dataclass
class Neighbour:
    """One training painting close to the query, with its WebP thumbnail (b"": none kept)."""

    index: int
    movement: str
    artist: str
    file: str
    similarity: float
    thumbnail: bytes = field(default=b"", repr=False)

    @property
    def has_thumbnail(self) -> bool:
        return bool(self.thumbnail)

    def to_dict(self) -> dict:
        """JSON fields; the thumbnail as a data URI (None when the model keeps none)."""
        thumbnail = "data:image/webp;base64," + base64.b64encode(self.thumbnail).decode() if self.thumbnail else None
        return {"index": self.index, "movement": self.movement, "artist": self.artist,
                "artist_name": humanise_artist(self.artist), "file": self.file, "similarity": self.similarity,
                "thumbnail": thumbnail}


@dataclass
class SimilarPaintings:
    """The training paintings nearest to one input, most similar first, or why it failed.
    `itself`: the training painting the input is (same file, or the same picture re-saved),
    kept out of `neighbours`: a painting is not its own closest match."""

    path: str
    neighbours: list[Neighbour]
    error: str | None = None
    itself: Neighbour | None = None

    def to_dict(self) -> dict:
        return {"path": self.path, "in_training": self.itself.to_dict() if self.itself else None,
                "neighbours": [n.to_dict() for n in self.neighbours], "error": self.error}


def thumbnail_webp(image, side: int = THUMBNAIL_SIDE) -> bytes:
    """A WebP thumbnail whose longer side is at most `side` pixels."""
    small = image.copy()
    small.thumbnail((side, side))
    buffer = io.BytesIO()
    small.save(buffer, "WEBP", quality=75, method=4)
    return buffer.getvalue()


def _scatter_matrix(x: np.ndarray, mean: np.ndarray, block: int = 4096) -> np.ndarray:
    """(x - mean)^T (x - mean) in float64, a block of rows at a time: memory stays at one
    block, not a float64 copy of all of x (1.2 GB for 40k multicrop vectors)."""
    scatter = np.zeros((x.shape[1], x.shape[1]))
    for start in range(0, len(x), block):
        centred = (x[start : start + block] - mean).astype(np.float64)
        scatter += centred.T @ centred
    return scatter


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def _metadata(data: bytes) -> dict:
    """The string metadata of a safetensors file (its header is 8 bytes of length, then JSON)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size]).get("__metadata__", {})


def _faiss():
    try:
        import faiss
    except ImportError:
        return None
    return faiss


class SimilarityIndex:
    """Training paintings' vectors with their movement, artist and file (and thumbnails)."""

    def __init__(self, mean: np.ndarray, components: np.ndarray, vectors: np.ndarray, rows: list[dict],
                 thumbnails: list[bytes] | None = None, ann=None):
        if len(rows) != len(vectors) or (thumbnails is not None and len(thumbnails) != len(rows)):
            raise ValueError("rows, vectors and thumbnails differ in length")
        if components.shape != (vectors.shape[1], mean.shape[0]):
            raise ValueError("projection does not match the vectors")
        self.mean, self.components = mean.astype(np.float32), components.astype(np.float32)
        self._keep(vectors)
        self.rows, self.thumbnails, self.ann = rows, thumbnails, ann

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def input_dim(self) -> int:
        return self.mean.shape[0]

    @classmethod
    def build(cls, features: np.ndarray, rows: Sequence[dict], thumbnails: list[bytes] | None = None,
              ann: bool | None = None, seed: int = 0) -> SimilarityIndex:
        """Fit the projection on `features` (one row per painting) and index them.

        `ann`: True builds the faiss graph, False never, None when there are `ANN_MIN` rows
        or more and faiss is installed (else exact search, with a warning).
        """
        x = _normalise(features)
        sample = x if len(x) <= PCA_SAMPLE else x[np.random.default_rng(seed).choice(len(x), PCA_SAMPLE, replace=False)]
        mean = sample.mean(axis=0)
        k = max(1, min(MAX_DIM, *sample.shape))
        if len(sample) <= sample.shape[1]:  # few paintings: the SVD is cheap
            directions = np.linalg.svd((sample - mean).astype(np.float64), full_matrices=False)[2].T
        else:  # many: eigenvectors of the (dim x dim) covariance (eigh sorts them ascending)
            directions = np.linalg.eigh(_scatter_matrix(sample, mean))[1][:, ::-1]
        # largest variance first; rounded to float16 as stored, so the stored vectors and
        # later queries go through the very same projection
        components = np.ascontiguousarray(directions[:, :k].T, np.float16).astype(np.float32)
        index = cls(mean, components, np.zeros((len(x), k), np.float32), [dict(r) for r in rows], thumbnails)
        index._keep(index.project(features))
        if ann is None and len(x) >= ANN_MIN:
            ann = _faiss() is not None
            if not ann:
                log.warning("%d paintings in the similarity index: install artstyle[ann] (faiss) for fast "
                            "approximate search; exact search is used", len(x))
        if ann:
            index.ann = index._build_ann()
        return index

    def _keep(self, vectors: np.ndarray) -> None:
        """Index `vectors` as they are stored (float16): an index in memory searches exactly
        like the same index loaded from its file."""
        self.stored = np.asarray(vectors, np.float16)
        self.vectors = _normalise(self.stored.astype(np.float32))

    def _build_ann(self):
        faiss = _faiss()
        if faiss is None:
            raise ArtstyleError("approximate search needs faiss: pip install 'artstyle[ann]'")
        graph = faiss.IndexHNSWFlat(self.vectors.shape[1], HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        graph.add(np.ascontiguousarray(self.vectors))
        graph.hnsw.efSearch = HNSW_SEARCH
        return graph

    def project(self, features: np.ndarray) -> np.ndarray:
        """Model features -> unit vectors in the index's space."""
        features = np.asarray(features, np.float32)
        if features.ndim != 2 or features.shape[1] != self.input_dim:
            raise ArtstyleError(f"similarity index expects {self.input_dim} features per image, got {features.shape}")
        return _normalise((_normalise(features) - self.mean) @ self.components.T)

    def search(self, features: np.ndarray, k: int, exact: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(similarities, row ids), each (n_queries, k), most similar first."""
        k = min(k, len(self))
        queries = self.project(features)
        if self.ann is not None and not exact:
            similarities, ids = self.ann.search(np.ascontiguousarray(queries), k)
            return similarities, ids
        scores = queries @ self.vectors.T
        ids = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < len(self) else np.tile(np.arange(len(self)), (len(queries), 1))
        order = np.argsort(-np.take_along_axis(scores, ids, axis=1), axis=1, kind="stable")
        ids = np.take_along_axis(ids, order, axis=1)
        return np.take_along_axis(scores, ids, axis=1), ids

    def neighbours(self, features: np.ndarray, k: int = 5,
                   keys: Sequence[str | None] | None = None) -> list[tuple[list[Neighbour], Neighbour | None]]:
        """For each row of `features`: its `k` most similar training paintings, and the
        training painting it is itself (or None). A row is a training painting when `keys`
        (its file's sha256) names one, or one lies within `SAME_PICTURE`; that painting is
        left out of the `k`."""
        if k < 1:
            raise ArtstyleError("k must be at least 1")
        similarities, ids = self.search(features, k + 1)
        keys = keys if keys is not None else [None] * len(ids)
        out = []
        for row_s, row_i, key in zip(similarities, ids, keys):
            found = [self._neighbour(int(i), float(s)) for s, i in zip(row_s, row_i) if i >= 0]
            itself = next((n for n in found if (key and self.rows[n.index]["sha256"] == key)
                           or n.similarity >= SAME_PICTURE), None)
            out.append(([n for n in found if n is not itself][:k], itself))
        return out

    def _neighbour(self, i: int, similarity: float) -> Neighbour:
        return Neighbour(i, *(self.rows[i][f] for f in ROW_FIELDS[:3]), similarity=min(similarity, 1.0),
                         thumbnail=self.thumbnails[i] if self.thumbnails else b"")

    # ------------------------------------------------------------------ storage
    def to_bytes(self) -> tuple[bytes, bytes | None]:
        """(safetensors file, faiss graph or None)."""
        from safetensors.numpy import save

        tensors = {"mean": self.mean, "components": self.components.astype(np.float16),
                   "vectors": self.stored}
        if self.thumbnails is not None:
            sizes = np.array([len(t) for t in self.thumbnails], np.int64)
            tensors["thumbnail_offsets"] = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
            tensors["thumbnails"] = np.frombuffer(b"".join(self.thumbnails) or b"\0", np.uint8)
        tensors = {name: np.ascontiguousarray(t) for name, t in tensors.items()}  # save() ignores strides
        data = save(tensors, metadata={"rows": json.dumps([[r[f] for f in ROW_FIELDS] for r in self.rows])})
        graph = None
        if self.ann is not None:
            graph = _faiss().serialize_index(self.ann).tobytes()
        return data, graph

    @classmethod
    def from_bytes(cls, data: bytes, graph: bytes | None = None) -> SimilarityIndex:
        """Read what `to_bytes` wrote; errors propagate for the caller to name the file."""
        from safetensors.numpy import load

        tensors = load(data)
        rows = [dict(zip(ROW_FIELDS, map(str, row))) for row in json.loads(_metadata(data)["rows"])]
        thumbnails = None
        if "thumbnail_offsets" in tensors:
            offsets, blob = tensors["thumbnail_offsets"], tensors["thumbnails"].tobytes()
            thumbnails = [blob[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
        ann = None
        if graph is not None:
            faiss = _faiss()
            if faiss is None:
                log.warning("this model's similarity index has an approximate-search graph, but faiss is not "
                            "installed (pip install 'artstyle[ann]'): exact search is used")
            else:
                ann = faiss.deserialize_index(np.frombuffer(graph, np.uint8))
                ann.hnsw.efSearch = HNSW_SEARCH
                if ann.ntotal != len(rows) or ann.d != tensors["components"].shape[0]:
                    raise ValueError("the approximate-search graph does not match the index")
        return cls(tensors["mean"], tensors["components"].astype(np.float32), tensors["vectors"].astype(np.float32),
                   rows, thumbnails, ann)


def training_index(images: LabelledImages, rows: np.ndarray, features: np.ndarray, thumbnails: bool, seed: int,
                   show_progress: bool) -> SimilarityIndex:
    """The index of the training paintings (train and val `rows`), with a thumbnail of each
    when `thumbnails`, for `similar()`."""
    kept: list[bytes] | None = None
    if thumbnails:
        kept = []
        with progress_bar(len(rows), "Thumbnails", enabled=show_progress) as advance:
            for i in rows:
                try:
                    kept.append(thumbnail_webp(load_image(images.sources[i], min_side=THUMBNAIL_SIDE)))
                except (OSError, ValueError, ImageLoadError) as exc:  # read once already; gone since
                    log.warning("%s: no thumbnail (%s)", images.records[i].path, exc)
                    kept.append(b"")
                advance(1)
    meta = [{"movement": r.label, "artist": r.artist, "file": r.path, "sha256": r.sha256}
            for r in (images.records[i] for i in rows)]
    return SimilarityIndex.build(features, meta, kept, seed=seed)


def training_movements(images: list, features: np.ndarray, errors: dict[int, str], trained_files: dict[str, str],
                       index: SimilarityIndex | None) -> list[str | None]:
    """Per image, the movement it was filed under if it is a training painting: the same
    file (by hash in `trained_files`), or the same picture re-saved or resized (`index`)."""
    keys = [file_sha256(img) if trained_files and isinstance(img, (str, os.PathLike)) and i not in errors
            else None for i, img in enumerate(images)]
    found = [trained_files.get(key) if key else None for key in keys]
    rows = [i for i, label in enumerate(found) if label is None and i not in errors]
    for start in range(0, len(rows) if index is not None else 0, 1024):  # bounded memory for big batches
        chunk = rows[start:start + 1024]
        for i, (_, itself) in zip(chunk, index.neighbours(features[chunk], 1, [keys[i] for i in chunk])):
            found[i] = itself.movement if itself is not None else None
    return found

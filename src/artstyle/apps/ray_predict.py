"""`artstyle predict --ray`: label a collection too large for one machine on Ray Data.

Ray Data reads the paths (a folder, a text file of paths, or a column of a Parquet or CSV
file, local or on any pyarrow filesystem such as s3://), an actor pool runs the model
(each actor loads the model folder once, ONNX Runtime with one thread per CPU it holds,
and decodes its own images: a multicrop image is 3 MB of views against a few hundred KB
of JPEG, so shipping views between processes would cost more than decoding beside the
network), and Parquet files with the fields of `predict --format json` stream to the
output folder. Nothing is held on the driver but the progress. Unreadable images become
rows with an `error`; with `resume`, paths already in the output are not computed again.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArtstyleError
from ..features.ray_extraction import connect, cpus

log = logging.getLogger("artstyle")

PATH_COLUMN = "path"
LIGHT = 0  # CPUs of the tasks that read lists and write Parquet: light I/O that must not wait for the actors


def result_schema():
    """The Parquet schema: `predict --format json`'s fields, typed."""
    import pyarrow as pa

    return pa.schema([
        ("path", pa.string()),
        ("predictions", pa.list_(pa.struct([("label", pa.string()), ("probability", pa.float64())]))),
        ("uncertain", pa.bool_()),
        ("mixed", pa.list_(pa.string())),
        ("is_painting", pa.bool_()),
        ("not_painting_kind", pa.string()),
        ("in_training", pa.bool_()),
        ("training_movement", pa.string()),
        ("family", pa.struct([("name", pa.string()), ("probability", pa.float64()), ("movement", pa.string()),
                              ("movement_probability", pa.float64())])),
        ("family_first", pa.bool_()),
        ("error", pa.string()),
    ])


def _fetch(path: str, local: str) -> str:
    """A local path for `path`: itself, or `local` + its extension holding a copy of a
    remote (pyarrow filesystem) file."""
    if "://" not in path:
        return path
    from pyarrow import fs

    filesystem, inner = fs.FileSystem.from_uri(path)
    local += os.path.splitext(inner)[1]
    with filesystem.open_input_stream(inner) as source, open(local, "wb") as target:
        target.write(source.read())
    return local


class Predictor:
    """A Ray Data actor: loads the model once, answers batches of paths."""

    def __init__(self, model: str, k: int, column: str = PATH_COLUMN, threads: int = 1, precision: str = "auto"):
        from ..model.classifier import StyleClassifier

        self.clf = StyleClassifier.load(model, cache_dir=False, engine="onnx", precision=precision, workers=0,
                                        show_progress=False)
        for extractor in self.clf.feature_extractors:
            extractor.backbone.threads = threads
        self.k = min(k, len(self.clf.classes_))
        self.column = column
        self.schema = result_schema()

    def __call__(self, batch):
        import pyarrow as pa

        paths = [str(p).strip() for p in batch.column(self.column).to_pylist()]
        with tempfile.TemporaryDirectory(prefix="artstyle-ray-") as tmp:
            local, rows = [], {}
            for i, path in enumerate(paths):
                try:
                    local.append(_fetch(path, os.path.join(tmp, str(i))))
                except (OSError, ValueError) as exc:  # pyarrow: missing file, unknown scheme
                    rows[i] = {"path": path, "predictions": [], "error": f"cannot read: {exc}"}
                    local.append(None)
            todo = [i for i, p in enumerate(local) if p is not None]
            for i, prediction in zip(todo, self.clf.predict_top_k([local[i] for i in todo], k=self.k)):
                rows[i] = {**prediction.to_dict(), "path": paths[i]}
        return pa.Table.from_pylist([rows[i] for i in range(len(paths))], schema=self.schema)


def read_sources(source: str, column: str = PATH_COLUMN):
    """(Ray dataset, the column holding the paths) from a folder, a .txt list (one path a
    line), or a column of a .parquet/.csv file."""
    import ray.data

    lower = source.lower()
    if "://" not in source and os.path.isdir(source):
        from ..data.dataset import find_images

        return ray.data.from_items([{PATH_COLUMN: str(p)} for p in find_images(source)]), PATH_COLUMN
    if lower.endswith((".parquet", ".pq")) or "://" in source and not lower.endswith((".csv", ".txt")):
        return ray.data.read_parquet(source, columns=[column], num_cpus=LIGHT), column
    if lower.endswith(".csv"):
        return ray.data.read_csv(source, num_cpus=LIGHT), column
    if lower.endswith(".txt"):
        lines = ray.data.read_text(source, num_cpus=LIGHT)
        return lines.filter(lambda row: bool(row["text"].strip()), num_cpus=LIGHT), "text"
    raise ArtstyleError(f"{source}: not a folder, .txt list, .parquet or .csv file of image paths")


def done_paths(out: Path) -> set[str]:
    """Paths already answered in `out`'s Parquet files. A file a stopped job left half
    written is renamed `*.incomplete` (its paths are computed again)."""
    import pyarrow.parquet as pq

    done: set[str] = set()
    for file in sorted(out.glob("*.parquet")) if out.is_dir() else []:
        try:
            done.update(pq.read_table(file, columns=[PATH_COLUMN]).column(PATH_COLUMN).to_pylist())
        except Exception as exc:  # pyarrow raises several types for a truncated file
            log.warning("%s: incomplete (%s); its paths are predicted again", file, str(exc).splitlines()[0])
            file.rename(file.with_name(file.name + ".incomplete"))
    return done


@dataclass
class RayJob:
    """What one `predict --ray` run did."""

    skipped: int  # paths already in the output (resume)
    out: Path


def predict_on_ray(source: str, model: str | os.PathLike, out: str | os.PathLike, *, k: int = 3,
                   resume: bool = False, address: str | None = None, actors: int | None = None,
                   batch_size: int = 16, column: str = PATH_COLUMN, precision: str = "auto",
                   predictor: type = Predictor) -> RayJob:
    """Predict every image of `source` into Parquet files under `out` (see the module
    docstring). The model folder must be readable at the same path by every node;
    `precision` "auto" is decided by each node's CPU."""
    from ..features.int8 import choose_precision
    from ..model.bundle import has_int8, int8_weight_range, load_bundle

    out = Path(out).expanduser()
    model = Path(model).expanduser().resolve()
    config = load_bundle(model).config
    # refused here, not per actor
    choose_precision(precision, has_int8(config), "onnx", str(model), int8_weight_range(config))
    if out.exists() and any(out.iterdir()) and not resume:
        raise ArtstyleError(f"{out}: already holds results; pass --resume to add the missing paths, "
                            "or choose an empty folder")
    done = done_paths(out) if resume else set()
    connect(address)
    import ray.data

    dataset, column = read_sources(source, column)
    if done:
        dataset = dataset.filter(lambda row: str(row[column]).strip() not in done, num_cpus=LIGHT)
    answered = dataset.map_batches(
        predictor, fn_constructor_kwargs={"model": str(model), "k": k, "column": column, "precision": precision}, batch_size=batch_size,
        compute=ray.data.ActorPoolStrategy(size=actors or cpus()), num_cpus=1, batch_format="pyarrow")
    # Ray Data restarts a dead actor and retries its batch by default (max_restarts=-1)
    out.mkdir(parents=True, exist_ok=True)
    answered.write_parquet(str(out), ray_remote_args={"num_cpus": LIGHT})
    return RayJob(len(done), out)

"""Model bundle: the folder `artstyle train` writes and everything else reads.

    model.safetensors  head and painting-detector tensors (no code, no pickle)
    config.json        format version, feature recipe and backbones, labels, head type,
                       temperature, thresholds, dataset
    labels.txt         one class per line, in output order
    splits.csv         which image went to train / val / test
    metrics.json       held-out evaluation at training time
    backbone.safetensors  the network's weights, only when fine-tuned (checked by digest)
    similar.safetensors   the training paintings' vectors, movement, artist, file and
                       thumbnails, for `artstyle similar` (checked by digest)
    similar.faiss      its approximate-search graph, for large indexes (faiss's format)
    embedding.onnx     the network as ONNX Runtime runs it (embedding-1.onnx, ... for more
                       backbones; checked by digest): predicting needs no torch
    embedding.int8.onnx   the same graph quantized to int8 by `artstyle quantize`, with
                       its calibration (checked by digest, read only when it runs)
    tensorboard/       the training curves as a TensorBoard event file (`curves`): never read

Loading never executes anything from the folder, and any missing, corrupt or
inconsistent file is reported as one line naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.splits import parse_splits_csv
from ..errors import BundleError
from ..features.graph_cache import BundledGraph
from ..files import atomic_write_bytes, public_mode
from . import size_bands  # noqa: F401  (registers the size-band head type)
from .calibration import Abstention
from .curves import EVENTS_FILE, tensorboard_events
from .head import Head, head_from_tensors
from .painting import PaintingDetector
from .similar import SimilarityIndex
from .text_detector import TextDetector

FORMAT_NAME = "artstyle-model"
FORMAT_VERSION = 2  # 1: one backbone, one view, linear head, no thresholds (still read)
BUNDLE_FILES = ("model.safetensors", "config.json", "labels.txt", "splits.csv", "metrics.json")
BACKBONE_FILE = "backbone.safetensors"
SIMILAR_FILE, ANN_FILE = "similar.safetensors", "similar.faiss"


def graph_file(i: int, precision: str = "fp32") -> str:
    """File of backbone `i`'s embedding graph."""
    stem = "embedding" if i == 0 else f"embedding-{i}"
    return f"{stem}.onnx" if precision == "fp32" else f"{stem}.{precision}.onnx"


@dataclass
class Bundle:
    """In-memory model folder."""

    config: dict
    head: Head
    splits_csv: str = "path,label,artist,sha256,split\n"
    metrics: dict = field(default_factory=dict)
    detector: PaintingDetector | TextDetector | None = None
    backbone: Path | None = None  # fine-tuned backbone weights (safetensors file)
    similar: SimilarityIndex | None = None  # None: a model from before the index existed
    graphs: list[BundledGraph] | None = None  # one per backbone; None: built or cached where it runs
    int8_graphs: list[BundledGraph] | None = None  # quantized from `graphs`, one per backbone

    @property
    def labels(self) -> list[str]:
        return list(self.config["labels"])


def _json_bytes(data: dict) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=False) + "\n").encode()


def save_bundle(path: str | os.PathLike, bundle: Bundle) -> Path:
    """Write `bundle` to folder `path`; each file appears atomically.

    A new folder is assembled beside its final name and renamed into place. An
    existing model folder has its files replaced one by one, leaving other files alone;
    any other non-empty folder is refused rather than overwritten.
    """
    from safetensors.numpy import save as save_safetensors

    target = Path(path).expanduser()
    config = {k: v for k, v in bundle.config.items() if k != "similar"}
    optional: dict[str, bytes | None] = dict.fromkeys((BACKBONE_FILE, SIMILAR_FILE, ANN_FILE))  # None: removed
    optional[EVENTS_FILE] = tensorboard_events(bundle.config)
    if bundle.backbone is not None:
        try:
            optional[BACKBONE_FILE] = Path(bundle.backbone).read_bytes()
        except OSError as exc:
            raise BundleError(f"{bundle.backbone}: cannot read the fine-tuned backbone ({exc.strerror or exc})") from None
    if bundle.similar is not None:
        index, graph = optional[SIMILAR_FILE], optional[ANN_FILE] = bundle.similar.to_bytes()
        config["similar"] = {
            "count": len(bundle.similar), "dim": int(bundle.similar.vectors.shape[1]),
            "thumbnails": bundle.similar.thumbnails is not None, "approximate": graph is not None,
            "sha256": _digest(index, graph),
        }
    graph_files = {}
    entries = [{k: v for k, v in entry.items() if k not in ("graph", "graph_int8")}
               for entry in config["features"]["backbones"]]
    if bundle.graphs is not None:
        for i, (entry, graph) in enumerate(zip(entries, bundle.graphs, strict=True)):
            entry["graph"] = _graph_entry(graph_file(i), graph)
            graph_files[graph_file(i)] = graph.data
        for i, graph in enumerate(bundle.int8_graphs or []):
            entries[i]["graph_int8"] = {**_graph_entry(graph_file(i, "int8"), graph), "of": entries[i]["graph"]["sha256"],
                                        "quantization": graph.info["quantization"]}
            graph_files[graph_file(i, "int8")] = graph.data
    config["features"] = {**config["features"], "backbones": entries}
    tensors = {**bundle.head.tensors(), **(bundle.detector.tensors() if bundle.detector else {})}
    contents = {
        "model.safetensors": save_safetensors(
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in tensors.items()},
            metadata={"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)},
        ),
        "config.json": _json_bytes(config),
        "labels.txt": ("\n".join(bundle.labels) + "\n").encode(),
        "splits.csv": bundle.splits_csv.encode(),
        "metrics.json": _json_bytes(bundle.metrics),
        **{name: data for name, data in optional.items() if data is not None},
        **graph_files,
    }
    if target.exists() and not target.is_dir():
        raise BundleError(f"{target}: exists and is not a folder")
    if target.is_dir():
        if any(target.iterdir()) and not (target / "config.json").is_file():
            raise BundleError(f"{target}: folder is not empty and holds no artstyle model; refusing to overwrite")
        for name, data in contents.items():
            atomic_write_bytes(target / name, data)
        stale = [name for name, data in optional.items() if data is None]
        stale += [p.name for p in target.glob("embedding*.onnx") if p.name not in contents]
        for name in stale:
            (target / name).unlink(missing_ok=True)  # a previous model's
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    public_mode(staging, directory=True)
    for name, data in contents.items():
        (staging / name).parent.mkdir(exist_ok=True)
        (staging / name).write_bytes(data)
    os.replace(staging, target)
    return target


def _graph_entry(name: str, graph: BundledGraph) -> dict:
    """What config.json records of a backbone's graph: enough to run it without the network."""
    return {"file": name, "sha256": graph.digest, "stats": graph.stats,
            "feature_dim": graph.info["feature_dim"], "stats_dim": graph.info["stats_dim"]}


def _load_graphs(folder: Path, backbones: list[dict], key: str = "graph") -> list[BundledGraph] | None:
    """Each backbone's graph (`key` "graph_int8": its int8 one), when the folder carries
    them; refused when altered."""
    if not all(entry.get(key) for entry in backbones):
        return None
    graphs = []
    for entry in backbones:
        info = entry[key]
        data = _read(folder, info["file"])
        if hashlib.sha256(data).hexdigest() != info.get("sha256"):
            raise BundleError(f"{folder / info['file']}: altered or from another model "
                              "(its digest does not match config.json)")
        description = {"feature_dim": info["feature_dim"], "stats_dim": info["stats_dim"],
                       "weights_id": entry.get("weights_id"),
                       "preprocessing": {**entry["preprocessing"], "grid": 1}}
        precision = "fp32"
        if key == "graph_int8":
            if info.get("of") != entry.get("graph", {}).get("sha256"):
                raise BundleError(f"{folder / info['file']}: quantized from another embedding than "
                                  f"{entry.get('graph', {}).get('file', 'this model')}'s; run `artstyle quantize` again")
            description["quantization"], precision = info.get("quantization", {}), "int8"
        graphs.append(BundledGraph(data, bool(info["stats"]), description, str(folder / info["file"]), precision))
    return graphs


def has_int8(config: dict) -> bool:
    """Whether the model folder of `config` carries int8 graphs (`artstyle quantize`)."""
    return all(entry.get("graph_int8") for entry in config["features"]["backbones"])


def int8_weight_range(config: dict) -> str:
    """The weight range ("full" or "reduced") of the folder's int8 graphs: which CPUs run them accurately."""
    from ..features.int8 import graph_weight_range

    ranges = {graph_weight_range(entry.get("graph_int8", {}).get("quantization", {}))
              for entry in config["features"]["backbones"]}
    return "full" if "full" in ranges else "reduced"


def load_int8_graphs(path: str | os.PathLike, config: dict) -> list[BundledGraph]:
    """The folder's int8 graphs, read only when they are to run; refused when altered or
    quantized from another fp32 graph than the folder's."""
    folder = Path(path).expanduser()
    try:
        graphs = _load_graphs(folder, config["features"]["backbones"], "graph_int8")
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{folder / 'config.json'}: invalid int8 graph entry ({exc})") from None
    if graphs is None:
        raise BundleError(f"{folder}: has no int8 embedding; write one with `artstyle quantize {folder} DATA`")
    return graphs


def _digest(*parts: bytes | None) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(b"-" if part is None else hashlib.sha256(part).digest())
    return digest.hexdigest()


def _read(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except FileNotFoundError:
        raise BundleError(f"{folder}: not an artstyle model, missing {name}") from None
    except OSError as exc:
        raise BundleError(f"{folder / name}: cannot read ({exc.strerror or exc})") from None


def _read_json(folder: Path, name: str) -> dict:
    try:
        data = json.loads(_read(folder, name))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BundleError(f"{folder / name}: corrupt JSON ({exc})") from None
    if not isinstance(data, dict):
        raise BundleError(f"{folder / name}: expected a JSON object")
    return data


def _upgrade_v1(config: dict) -> dict:
    """A version-1 config (one backbone, global view, linear head) in today's layout."""
    backbone = config.get("backbone")
    if not isinstance(backbone, dict) or "preprocessing" not in config:
        raise KeyError("backbone")
    entry = {**backbone, "dim": backbone.get("feature_dim"), "preprocessing": config["preprocessing"]}
    return {
        **config,
        "features": {"recipe": "global", "backbones": [entry], "dim": backbone.get("feature_dim")},
        "head": {**config.get("head", {}), "type": "linear"},
        "abstention": {"uncertain_below": 0.0, "mixed_margin": 0.0},
        "painting_detector": None,
    }


def load_bundle(path: str | os.PathLike) -> Bundle:
    """Read and validate a model folder."""
    from safetensors.numpy import load as load_safetensors

    folder = Path(path).expanduser()
    if not folder.is_dir():
        raise BundleError(f"{folder}: no such model folder")
    config = _read_json(folder, "config.json")
    if config.get("format") != FORMAT_NAME:
        raise BundleError(f"{folder / 'config.json'}: not an artstyle model config")
    version = config.get("format_version")
    if version not in (1, FORMAT_VERSION):
        raise BundleError(
            f"{folder}: model format version {version!r} is not supported "
            f"(this artstyle reads versions 1 to {FORMAT_VERSION}); retrain or upgrade artstyle"
        )
    try:
        config = _upgrade_v1(config) if version == 1 else config
        missing = [key for key in ("features", "labels", "temperature", "head", "abstention") if key not in config]
        backbones = config["features"]["backbones"] if "features" in config else []
        valid = bool(backbones) and all({"name", "preprocessing"} <= set(b) for b in backbones)
        Abstention.from_dict(config.get("abstention", {"uncertain_below": 0, "mixed_margin": 0}))
    except (KeyError, TypeError, ValueError) as exc:
        raise BundleError(f"{folder / 'config.json'}: missing or invalid {exc}") from None
    if missing or not valid:
        raise BundleError(f"{folder / 'config.json'}: missing {', '.join(missing) or 'feature backbones'}")
    labels = config["labels"]
    labels_txt = _read(folder, "labels.txt").decode("utf-8", "replace").splitlines()
    if labels_txt != labels:
        raise BundleError(f"{folder / 'labels.txt'}: does not match the labels in config.json")
    try:
        tensors = load_safetensors(_read(folder, "model.safetensors"))
        head = head_from_tensors(config["head"]["type"], tensors, float(config["temperature"]))
        detector = _detector(tensors, config.get("painting_detector"))
    except BundleError:
        raise
    except Exception as exc:  # safetensors, shape and key errors alike
        raise BundleError(f"{folder / 'model.safetensors'}: corrupt or incomplete ({exc})") from None
    feature_dim = config["features"].get("dim")
    if head.n_classes != len(labels) or (feature_dim is not None and head.dim != feature_dim) or (
        detector is not None and not detector.fits(head.dim)
    ):
        raise BundleError(f"{folder / 'model.safetensors'}: shape does not match config.json")
    if not np.isfinite(head.temperature) or head.temperature <= 0:
        raise BundleError(f"{folder / 'config.json'}: invalid temperature {config['temperature']!r}")
    splits_text = _read(folder, "splits.csv").decode("utf-8", "replace")
    try:
        parse_splits_csv(splits_text)
    except Exception as exc:
        raise BundleError(f"{folder / 'splits.csv'}: {exc}") from None
    metrics = _read_json(folder, "metrics.json")
    try:
        graphs = _load_graphs(folder, backbones)
    except (KeyError, TypeError) as exc:
        raise BundleError(f"{folder / 'config.json'}: invalid graph entry ({exc})") from None
    return Bundle(config, head, splits_text, metrics, detector, _check_backbone(folder, backbones),
                  _load_similar(folder, config.get("similar"), head.dim), graphs)


def _detector(tensors: dict[str, np.ndarray], config: dict | None) -> PaintingDetector | TextDetector | None:
    """The folder's "not a painting" detector: a trained one, or a zero-shot model's prompts."""
    if not config:
        return None
    if config.get("kind") == "text prompts":
        return TextDetector.from_saved(tensors, config)
    return PaintingDetector.from_saved(tensors, config)


def _load_similar(folder: Path, info: dict | None, dim: int) -> SimilarityIndex | None:
    """The similarity index, refused when its files are not the ones the model was saved with."""
    if not info:
        return None
    path = folder / SIMILAR_FILE
    data = _read(folder, SIMILAR_FILE)
    graph = _read(folder, ANN_FILE) if info.get("approximate") else None
    if _digest(data, graph) != info.get("sha256"):
        names = f"{path} or {ANN_FILE}" if graph is not None else str(path)
        raise BundleError(f"{names}: altered or from another model (its digest does not match config.json)")
    try:
        index = SimilarityIndex.from_bytes(data, graph)
    except Exception as exc:  # safetensors, JSON, faiss and shape errors alike
        raise BundleError(f"{path}: corrupt or incomplete ({exc})") from None
    if len(index) != info.get("count") or index.input_dim != dim:
        raise BundleError(f"{path}: shape does not match config.json")
    return index


def tensor_layout(data: bytes) -> dict:
    """Count, parameters and a digest of the names and shapes of a safetensors file's
    tensors: what config.json records of a fine-tuned backbone."""
    from safetensors.numpy import load as load_safetensors

    tensors = load_safetensors(data)
    shapes = sorted((name, list(t.shape)) for name, t in tensors.items())
    return {
        "count": len(shapes),
        "parameters": int(sum(t.size for t in tensors.values())),
        "layout": hashlib.sha256(json.dumps(shapes).encode()).hexdigest()[:16],
    }


def _check_backbone(folder: Path, backbones: list[dict]) -> Path | None:
    """The fine-tuned backbone's file, when the model has one: it must be the very file
    the model was trained with (same digest, same tensors), or the head reads other features."""
    tuned = [b for b in backbones if b.get("finetuned")]
    if not tuned:
        return None
    from safetensors import SafetensorError

    path = folder / BACKBONE_FILE
    data = _read(folder, BACKBONE_FILE)
    if tuned[0].get("weights_id") != "file:" + hashlib.sha256(data).hexdigest()[:16]:
        raise BundleError(f"{path}: altered or from another model (its digest does not match config.json)")
    try:
        layout = tensor_layout(data)
    except SafetensorError as exc:
        raise BundleError(f"{path}: corrupt ({exc})") from None
    if layout != tuned[0]["finetuned"].get("tensors", layout):
        raise BundleError(f"{path}: tensor names or shapes do not match config.json")
    return path

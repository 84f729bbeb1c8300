"""Model bundle: the folder `artstyle train` writes and everything else reads.

    model.safetensors  head tensors (no code, no pickle)
    config.json        format version, backbone, preprocessing, labels, temperature, dataset
    labels.txt         one class per line, in output order
    splits.csv         which image went to train / val / test
    metrics.json       held-out evaluation at training time

Loading never executes anything from the folder, and any missing, corrupt or
inconsistent file is reported as one line naming it.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .cache import atomic_write_bytes, public_mode
from .errors import BundleError
from .head import LinearHead
from .splits import parse_splits_csv

FORMAT_NAME = "artstyle-model"
FORMAT_VERSION = 1
BUNDLE_FILES = ("model.safetensors", "config.json", "labels.txt", "splits.csv", "metrics.json")


@dataclass
class Bundle:
    """In-memory model folder."""

    config: dict
    head: LinearHead
    splits_csv: str = "path,label,artist,sha256,split\n"
    metrics: dict = field(default_factory=dict)

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
    contents = {
        "model.safetensors": save_safetensors(
            {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in bundle.head.tensors().items()},
            metadata={"format": FORMAT_NAME, "format_version": str(FORMAT_VERSION)},
        ),
        "config.json": _json_bytes(bundle.config),
        "labels.txt": ("\n".join(bundle.labels) + "\n").encode(),
        "splits.csv": bundle.splits_csv.encode(),
        "metrics.json": _json_bytes(bundle.metrics),
    }
    if target.exists() and not target.is_dir():
        raise BundleError(f"{target}: exists and is not a folder")
    if target.is_dir():
        if any(target.iterdir()) and not (target / "config.json").is_file():
            raise BundleError(f"{target}: folder is not empty and holds no artstyle model; refusing to overwrite")
        for name, data in contents.items():
            atomic_write_bytes(target / name, data)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.partial-"))
    public_mode(staging, directory=True)
    for name, data in contents.items():
        (staging / name).write_bytes(data)
    os.replace(staging, target)
    return target


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
    if version != FORMAT_VERSION:
        raise BundleError(
            f"{folder}: model format version {version!r} is not supported "
            f"(this artstyle reads version {FORMAT_VERSION}); retrain or upgrade artstyle"
        )
    for key in ("backbone", "preprocessing", "labels", "temperature"):
        if key not in config:
            raise BundleError(f"{folder / 'config.json'}: missing {key!r}")
    labels = config["labels"]
    labels_txt = _read(folder, "labels.txt").decode("utf-8", "replace").splitlines()
    if labels_txt != labels:
        raise BundleError(f"{folder / 'labels.txt'}: does not match the labels in config.json")
    try:
        tensors = load_safetensors(_read(folder, "model.safetensors"))
        head = LinearHead.from_tensors(tensors, float(config["temperature"]))
    except BundleError:
        raise
    except Exception as exc:  # safetensors, shape and key errors alike
        raise BundleError(f"{folder / 'model.safetensors'}: corrupt or incomplete ({exc})") from None
    feature_dim = config["backbone"].get("feature_dim")
    if head.n_classes != len(labels) or (feature_dim is not None and head.dim != feature_dim):
        raise BundleError(f"{folder / 'model.safetensors'}: shape does not match config.json")
    if not np.isfinite(head.temperature) or head.temperature <= 0:
        raise BundleError(f"{folder / 'config.json'}: invalid temperature {config['temperature']!r}")
    splits_text = _read(folder, "splits.csv").decode("utf-8", "replace")
    try:
        parse_splits_csv(splits_text)
    except Exception as exc:
        raise BundleError(f"{folder / 'splits.csv'}: {exc}") from None
    metrics = _read_json(folder, "metrics.json")
    return Bundle(config, head, splits_text, metrics)

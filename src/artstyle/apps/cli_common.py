"""What every `artstyle` command shares: the typer app and its global options, the consoles,
the choices and help texts several commands offer, and the checks of their arguments."""

from __future__ import annotations

import logging
import os
import shlex
import sys
from enum import Enum
from pathlib import Path

import typer
from rich.console import Console

from .. import __version__
from ..data.manifest import is_manifest
from ..errors import ArtstyleError
from ..features.int8 import PRECISIONS, WEIGHT_RANGES
from ..features.recipes import ENGINES

app = typer.Typer(
    help="Recognise the art movement of a painting: train on a folder of paintings, evaluate honestly, predict.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # click's plain help: it reflows to any width (rich's panels were 250 ragged lines at 80)
)
out = Console()
err = Console(stderr=True)


class SplitMode(str, Enum):
    auto = "auto"
    stratified = "stratified"
    artist = "artist"


class Device(str, Enum):
    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


class TextOrJson(str, Enum):
    text = "text"
    json = "json"


# built from the library's own tuples (mypy cannot list their members: options name them by value)
Engine = Enum("Engine", {name: name for name in ENGINES}, type=str)  # type: ignore[misc]
Precision = Enum("Precision", {name: name for name in PRECISIONS}, type=str)  # type: ignore[misc]
WeightRange = Enum("WeightRange", {name: name for name in WEIGHT_RANGES}, type=str)  # type: ignore[misc]


ENGINE_HELP = "Run the network on torch, onnx (ONNX Runtime, faster on CPU) or auto (onnx when installed)."
PRECISION_HELP = ("Embedding precision: int8 (the model folder's, from `artstyle quantize`), fp32, or auto "
                  "(int8 where the folder has it, the engine is onnx and this CPU gains from it).")
RAY_HELP = ("Run on Ray Data (pip install 'artstyle[ray]'): 'local' starts Ray here, 'auto' joins this machine's "
            "cluster, or a cluster address (ray://head:10001).")


class InfoFormat(str, Enum):
    text = "text"
    json = "json"
    markdown = "markdown"


class PredictFormat(str, Enum):
    table = "table"
    json = "json"
    csv = "csv"


class _State:
    """What the global options set once, read by every command (`STATE.quiet`)."""

    quiet = False


STATE = _State()


class _LineHandler(logging.Handler):
    """`warning: message` lines on stderr: one per problem, easy to grep."""

    def emit(self, record: logging.LogRecord) -> None:
        prefix = "warning: " if record.levelno >= logging.WARNING else ""
        sys.stderr.write(f"{prefix}{record.getMessage()}\n")


def _setup_logging(quiet: bool) -> None:
    logger = logging.getLogger("artstyle")
    logger.handlers[:] = [_LineHandler()]
    logger.setLevel(logging.WARNING if quiet else logging.INFO)
    logger.propagate = False


def _version(value: bool) -> None:
    if value:
        out.print(f"artstyle {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors on stderr, no progress bars."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Show the version."),
) -> None:
    _setup_logging(quiet)
    STATE.quiet = quiet


DATA_HELP = ("Painting folder(s) DATA/<movement>/<artist>/<image>, or manifests (.csv/.jsonl: path, movement, "
             "optional artist, source; Hugging Face metadata.csv as is); several merge by movement and artist as "
             "one collection.")


def folder_names(folders: list[Path]) -> str:
    """'paintings + wikiart': the folders a command was given, by name."""
    return " + ".join(folder.resolve().name for folder in folders)


def check_folders(paths: list[Path], what: str) -> None:
    """A missing folder (or manifest, where painting data is asked for) is a one-line error
    before anything is loaded."""
    for path in paths:
        if what == "painting folder" and is_manifest(path):
            if not path.is_file():
                raise ArtstyleError(f"{path}: no such manifest")
            continue
        if not path.is_dir():
            raise ArtstyleError(f"{path}: not a folder (no such {what})" if not path.exists() else f"{path}: not a folder")


def model_then_data(model: Path, data: list[Path], command: str) -> None:
    """MODEL must be a model folder and DATA painting folders; say so when they look swapped."""
    if not (model / "config.json").is_file():
        order = f"usage: artstyle {command} MODEL DATA..."
        if any((d / "config.json").is_file() for d in data):
            raise ArtstyleError(f"{model}: is not a model folder, but {next(d for d in data if (d / 'config.json').is_file())} "
                                f"is: the model comes first ({order})")
        check_folders([model], "model folder")
        raise ArtstyleError(f"{model}: not an artstyle model folder (no config.json); {order}")
    check_folders(data, "painting folder")


def model_or_default(model: Path | None) -> Path:
    from .. import default_model_path

    if model is None and not default_model_path().is_dir():
        raise ArtstyleError("this artstyle installation ships no default model yet; train one and pass --model")
    return model or default_model_path()


MODEL_WEIGHTS_HELP = ("The backbone's weights file, for a model trained with --weights (default: $ARTSTYLE_WEIGHTS, "
                      "else the hub's cached copy); it must be the file the model was trained with (checked by digest).")
MODEL_HELP = "Model folder written by `artstyle train` (default: the model shipped with artstyle)."
ZERO_SHOT_HELP = "No model: name the movements from text with an image+text backbone (--backbone clip-vit-b16)."
LABELS_HELP = "With --zero-shot: the movements to choose among, comma-separated (default: the 18 of Pandora18k)."
ZS_BACKBONE_HELP = "With --zero-shot: the image+text backbone (see `artstyle backbones`)."
ZS_WEIGHTS_HELP = "With --zero-shot: the backbone's published checkpoint, when offline (e.g. open_clip_model.safetensors)."


def classifier_for(model: Path | None, zero_shot: bool, backbone: str | None, labels: str | None,
                   weights: Path | None, **params):
    """The model folder's classifier, or with `zero_shot` one named from text."""
    if not zero_shot:
        if backbone or labels or weights:
            raise ArtstyleError("--backbone, --labels and --weights apply with --zero-shot (a model folder has its own)")
        from ..model.classifier import StyleClassifier

        return StyleClassifier.load(model_or_default(model), **params)
    if model is not None:
        raise ArtstyleError("--zero-shot needs no --model: give --backbone instead")
    if backbone is None:
        raise ArtstyleError("--zero-shot needs --backbone, e.g. --backbone clip-vit-b16 (see `artstyle backbones`)")
    from ..model.prompts import parse_labels
    from ..model.zero_shot import zero_shot_classifier

    params.pop("precision", None)  # zero-shot runs fp32: no int8 graph of its own
    return zero_shot_classifier(backbone, parse_labels(labels), weights, **params)


def refuse_model_as_images(paths: list[str]) -> None:
    """A model folder given where images go (`predict IMG model`): refused with the fix,
    rather than labelling its files with the shipped model."""
    for path in paths:
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
            raise ArtstyleError(f"{path}: is a model folder, not images; pass it as --model {shlex.quote(path)}")

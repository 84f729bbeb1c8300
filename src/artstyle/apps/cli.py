"""The `artstyle` command line: download, check, train, evaluate, predict, similar, explain, serve,
backbones, export, quantize, info.

Heavy libraries (torch, timm) are imported inside commands, so `--help` is instant.
Every user-fixable problem ends as one `error: ...` line and exit status 1.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import sys
from enum import Enum
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .. import __version__
from ..errors import ArtstyleError, require_torch
from ..features.finetune_recipe import FineTuning
from ..features.int8 import DEFAULT_CALIBRATION, PRECISIONS, WEIGHT_RANGES
from ..features.recipes import DEFAULT_BACKBONE, DEFAULT_RECIPE, ENGINES, RECIPES
from ..features.size_variants import DEFAULT_COPIES
from ..model.balancing import DEFAULT_BALANCING

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


Engine = Enum("Engine", {name: name for name in ENGINES}, type=str)
Precision = Enum("Precision", {name: name for name in PRECISIONS}, type=str)
WeightRange = Enum("WeightRange", {name: name for name in WEIGHT_RANGES}, type=str)


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


_QUIET = False  # set once by the --quiet option


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
    global _QUIET
    _QUIET = quiet


def _headline_title(metrics: dict) -> str:
    """What the scores were measured on, said plainly: held-out paintings, or a folder whose
    classes the model does not know (every movement answer is then a miss by construction)."""
    from ..model.metrics import knows_none

    n = metrics["n_images"]
    if knows_none(metrics):
        classes = ", ".join(metrics.get("unknown_to_model", {})) or "none"
        return f"Not a test of movements: none of these {n:,} images is of a movement the model knows ({classes})"
    where = metrics.get("evaluated_on") or "images the model never trained on"
    return f"Held-out evaluation: {n:,} {where if where.startswith('images') else 'images, ' + where}"


def _metrics_tables(metrics: dict) -> list[Table]:
    """The headline (each share with its 95 % interval and n), the training images apart
    when they were scored, per movement, and the slices."""
    from ..model.metrics import knows_none, share_text, wilson_interval

    n = metrics["n_images"]
    summary = Table(title=_headline_title(metrics), show_header=False, title_justify="left")
    summary.add_column(style="bold")
    summary.add_column(justify="right")
    summary.add_row("images", f"{n:,}")
    if knows_none(metrics):
        summary.add_row("flagged not a painting", share_text(metrics.get("flagged_not_painting", 0) / n, n))
    else:
        summary.add_row("accuracy (95 % interval, n)", share_text(metrics["accuracy"], n))
        summary.add_row("top-3 accuracy", share_text(metrics["top3_accuracy"], n))
        summary.add_row("macro-F1", f"{metrics['macro_f1']:.3f}")
        summary.add_row("calibration error (ECE)", f"{metrics['ece']:.3f}")
    tables = [summary]
    memorised = metrics.get("on_training_images")
    if memorised:
        on_training = Table(title="On training images (memorised; not a measure of skill)", show_header=False,
                            title_justify="left", style="dim")
        on_training.add_column()
        on_training.add_column(justify="right")
        on_training.add_row("images", f"{memorised['n_images']:,}")
        on_training.add_row("accuracy", share_text(memorised["accuracy"], memorised["n_images"]))
        on_training.add_row("top-3 accuracy", share_text(memorised["top3_accuracy"], memorised["n_images"]))
        tables.append(on_training)
    per_class = Table(title="Per movement (recall: 95 % interval)")
    for column in ("movement", "precision", "recall", "F1", "images"):
        per_class.add_column(column, justify="left" if column == "movement" else "right")
    unknown = metrics.get("unknown_to_model", {})
    for label, c in metrics["per_class"].items():
        if label in unknown:
            per_class.add_row(f"{label} [dim](unknown to the model: misses)[/dim]", "", "", "", str(c["support"]))
        elif c["support"]:
            low, high = wilson_interval(c["recall"], c["support"])
            per_class.add_row(label, f"{c['precision']:.2f}", f"{c['recall']:.2f} ({low:.2f}-{high:.2f})",
                              f"{c['f1']:.2f}", str(c["support"]))
        else:
            per_class.add_row(label, "", "", "", "[dim]untested[/dim]")
    slices = _slices_table(metrics)
    return [*tables, per_class, *([slices] if slices else [])]


def _slices_table(metrics: dict) -> Table | None:
    """Scores per size band and per source, when the images have more than one: a headline
    over web copies and full-size scans together hides how each kind fares."""
    from ..model.metrics import share_text, slices

    rows = slices(metrics)
    if not rows:
        return None
    table = Table(title="By size band and source (accuracy: 95 % interval)")
    for column in ("slice", "accuracy", "top-3", "macro-F1", "ECE"):
        table.add_column(column, justify="left" if column == "slice" else "right", no_wrap=column == "accuracy")
    for name, m in rows:
        table.add_row(name, share_text(m["accuracy"], m["n_images"]), f"{m['top3_accuracy']:.1%}",
                      f"{m['macro_f1']:.3f}", f"{m['ece']:.3f}")
    return table


DATA_HELP = ("Painting folder(s): DATA/<movement>/<artist>/<image>; several folders merge by movement and "
             "artist as one collection.")


def _names(folders: list[Path]) -> str:
    return " + ".join(folder.resolve().name for folder in folders)


@app.command()
def train(
    data: list[Path] = typer.Argument(..., help=DATA_HELP),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
    backbone: str = typer.Option(
        DEFAULT_BACKBONE, help="Feature network (see `artstyle backbones`); join two with '+' to fuse them."
    ),
    features: str = typer.Option(DEFAULT_RECIPE, help=f"Feature recipe: {', '.join(RECIPES)}."),
    head: str = typer.Option("auto", help="Classifier head: auto (chosen by cross-validation), logreg, svm or mlp."),
    balance: str = typer.Option(
        DEFAULT_BALANCING, help="How training paintings count: breadth (movements, then sources, then artists "
        "by the square root of their paintings, count alike; keeps broad movements from swallowing narrow "
        "ones) or class (movements alike, paintings alike inside them)."),
    size_variants: int = typer.Option(
        DEFAULT_COPIES, min=0, help="Shrunk copies (96-256 px short side) of each training painting the head also "
        "learns from, so the answer holds for thumbnails and full-size scans alike; 0: none."),
    weights: Optional[Path] = typer.Option(None, help="The backbone's weights file, when offline (a named backbone's published checkpoint, or a timm model's .safetensors)."),
    split: SplitMode = typer.Option(
        SplitMode.auto,
        help="artist: no artist on two sides; stratified: images per class; auto: artist when the tree has artist folders.",
    ),
    seed: int = typer.Option(0, help="Seed of the split (same seed, same split)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Feature cache folder (default: user cache dir)."),
    test_dir: Optional[Path] = typer.Option(None, help="Evaluate on this external painting tree instead of a test split."),
    strict: bool = typer.Option(False, help="Refuse a --test-dir with movements the model does not learn (default: count them as misses)."),
    test_fraction: float = typer.Option(
        0.1, min=0.0, max=0.5,
        help="Share of images held out for the test split; 0 trains on all and reports cross-validated scores.",
    ),
    non_paintings: Optional[Path] = typer.Option(
        None, "--non-paintings", help="Folder of real non-painting images (photos, charts, scans; photo/, chart/, "
        "document/ subfolders name their kind) the 'not a painting' detector learns from, embedded by this "
        "model's own network, instead of the ones that ship. A --finetune model needs them to know photos."),
    negatives: int = typer.Option(
        120, min=0, help="Generated non-paintings the 'not a painting' detector learns from, beside the real ones "
        "that ship for the backbone; 0 turns the detector off."
    ),
    batch_size: int = typer.Option(32, min=1, help="Images per forward pass."),
    engine: Engine = typer.Option(Engine.auto, help=ENGINE_HELP),
    finetune: bool = typer.Option(
        False, "--finetune", help="Train the backbone itself on the paintings first (slower, usually more accurate)."
    ),
    stages: Optional[int] = typer.Option(
        None, min=1, help="With --finetune: train only the top N stages of the network (default: all, at rates "
        "that fall towards the input)."),
    epochs: int = typer.Option(FineTuning.epochs, min=1, help="With --finetune: passes over the training images."),
    lr: float = typer.Option(FineTuning.lr, min=0.0, help="With --finetune: learning rate of the top stage (FineTuning.lr)."),
    finetune_batch: int = typer.Option(FineTuning.batch_size, min=1, help="With --finetune: images per training step."),
    device: Device = typer.Option(Device.auto, help="With --finetune: auto (the GPU when there is one), cpu or cuda."),
    thumbnails: bool = typer.Option(
        True, help="Keep a small WebP (<= 128 px, about 25 MB per 10,000 paintings) of each training painting, shown "
        "beside `similar` answers on the page and in reports; --no-thumbnails when their licences forbid copies."
    ),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Extract features on Ray. " + RAY_HELP),
    graph: bool = typer.Option(
        True, help="Keep the network as an ONNX graph in the model folder (about 14 MB for EfficientNet-Lite0, about "
        "350 MB for a ViT-B such as CLIP's): predicting then needs "
        "no torch, on any machine, from the first call."),
    text_prior: bool = typer.Option(
        False, "--text-prior", help="Image+text backbones: mix in the movements' zero-shot scores, most for movements "
        "with few paintings (config.json records the held-out macro-F1 with and without)."),
) -> None:
    """Train a movement classifier on a painting folder and write a model folder.

    With --finetune the network is first trained on the paintings (checkpointed every epoch:
    an interrupted run resumes when the same command is run again).
    """
    _folders(data, "painting folder")  # before the heavy imports: a typo answers at once
    from ..features.size_variants import SizeVariants
    from ..model.classifier import StyleClassifier

    tuning = FineTuning(stages=stages, epochs=epochs, lr=lr, batch_size=finetune_batch, seed=seed) if finetune else None
    clf = StyleClassifier(
        backbone, features=features, head=head, weights=weights, split=split.value, test_fraction=test_fraction, negatives=negatives, seed=seed, cache_dir=cache_dir,
        batch_size=batch_size, engine=engine.value, finetune=tuning, device=device.value, thumbnails=thumbnails,
        ray=ray, balance=balance, size_variants=SizeVariants(copies=size_variants) if size_variants else None,
        text_prior=text_prior, show_progress=not _QUIET,
    )
    try:
        clf.fit(data, test_dir=test_dir, strict=strict, non_paintings=non_paintings)
    except KeyboardInterrupt:
        err.print("interrupted: finished images and fine-tuning checkpoints are cached; "
                  "run the same command again to resume")
        raise typer.Exit(130) from None
    clf.config_["command"] = shlex.join(["artstyle", *sys.argv[1:]])  # the report's model section repeats it
    clf.save(out_dir, graphs=graph)
    head_info = clf.config_["head"]
    from .model_card import trained_on

    err.print(
        f"trained on {trained_on(clf.config_, clf.splits_csv_)}, split by "
        f"{'artist' if clf.config_['split']['mode'] == 'artist' else 'image'}; {len(clf.classes_)} movements; "
        f"head {head_info['kind']} chosen by {head_info['cv_folds']}-fold cross-validation", soft_wrap=True,
    )
    selection = head_info.get("selection", {})
    if selection.get("best_kind", head_info["kind"]) != head_info["kind"]:
        err.print(f"  ({selection['best_kind']} scored {selection['best_macro_f1']:.3f}, within one standard error "
                  f"({selection['standard_error']:.3f}) of {head_info['kind']}: the simpler head is kept)")
    prior = head_info.get("text_prior", {}).get("held_out_macro_f1")
    if prior:
        err.print(f"text prior: held-out macro-F1 {prior['with']:.3f} with it, {prior['without']:.3f} without")
    for table in _metrics_tables(clf.metrics_):
        err.print(table)
    err.print(f"model saved to [bold]{out_dir}[/bold]")


@app.command()
def evaluate(
    model: Path = typer.Argument(..., help="Model folder written by `artstyle train`."),
    data: list[Path] = typer.Argument(..., help="Labelled painting folder(s) to score; several merge as one."),
    fmt: TextOrJson = typer.Option(TextOrJson.text, "--format", help="text: tables; json: one JSON object on stdout."),
    report: Optional[Path] = typer.Option(None, help="Also write a self-contained HTML report here."),
    all_images: bool = typer.Option(False, "--all", help="Score every image, including those used in training."),
    strict: bool = typer.Option(False, help="Refuse a folder with movements the model does not know (default: count them as misses)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Feature cache folder (default: user cache dir)."),
    engine: Engine = typer.Option(Engine.auto, help=ENGINE_HELP),
    precision: Precision = typer.Option(Precision.auto, help=PRECISION_HELP),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Extract features on Ray. " + RAY_HELP),
) -> None:
    """Score a model on a labelled painting folder (its held-out part if it is the training folder)."""
    _model_then_data(model, data, "evaluate")
    from ..model.classifier import StyleClassifier

    clf = StyleClassifier.load(model, cache_dir=cache_dir, engine=engine.value, precision=precision.value, ray=ray,
                               show_progress=not _QUIET)
    evaluation = clf.evaluate(data, include_training=all_images, strict=strict)
    if fmt is TextOrJson.json:
        out.print_json(json.dumps(evaluation.metrics))
    else:
        for table in _metrics_tables(evaluation.metrics):
            out.print(table)
    if report is not None:
        from .report import write_report

        write_report(evaluation, report, title=f"artstyle evaluation of {model.name} on {_names(data)}", clf=clf)
        err.print(f"report written to [bold]{report}[/bold]")


def _folders(paths: list[Path], what: str) -> None:
    """A missing folder is a one-line error before anything is loaded."""
    for path in paths:
        if not path.is_dir():
            raise ArtstyleError(f"{path}: not a folder (no such {what})" if not path.exists() else f"{path}: not a folder")


def _model_then_data(model: Path, data: list[Path], command: str) -> None:
    """MODEL must be a model folder and DATA painting folders; say so when they look swapped."""
    if not (model / "config.json").is_file():
        order = f"usage: artstyle {command} MODEL DATA..."
        if any((d / "config.json").is_file() for d in data):
            raise ArtstyleError(f"{model}: is not a model folder, but {next(d for d in data if (d / 'config.json').is_file())} "
                                f"is: the model comes first ({order})")
        _folders([model], "model folder")
        raise ArtstyleError(f"{model}: not an artstyle model folder (no config.json); {order}")
    _folders(data, "painting folder")


def _model_or_default(model: Path | None) -> Path:
    from .. import default_model_path

    if model is None and not default_model_path().is_dir():
        raise ArtstyleError("this artstyle installation ships no default model yet; train one and pass --model")
    return model or default_model_path()


MODEL_WEIGHTS_HELP = ("The backbone's weights file, for a model trained with --weights (default: $ARTSTYLE_WEIGHTS, "
                      "else the hub's cached copy); it must be the file the model was trained with (checked by digest).")
ZERO_SHOT_HELP = "No model: name the movements from text with an image+text backbone (--backbone clip-vit-b16)."
LABELS_HELP = "With --zero-shot: the movements to choose among, comma-separated (default: the 18 of Pandora18k)."
ZS_BACKBONE_HELP = "With --zero-shot: the image+text backbone (see `artstyle backbones`)."
ZS_WEIGHTS_HELP = "With --zero-shot: the backbone's published checkpoint, when offline (e.g. open_clip_model.safetensors)."


def _classifier(model: Path | None, zero_shot: bool, backbone: str | None, labels: str | None, weights: Path | None,
                **params):
    """The model folder's classifier, or with `zero_shot` one named from text."""
    if not zero_shot:
        if backbone or labels or weights:
            raise ArtstyleError("--backbone, --labels and --weights apply with --zero-shot (a model folder has its own)")
        from ..model.classifier import StyleClassifier

        return StyleClassifier.load(_model_or_default(model), **params)
    if model is not None:
        raise ArtstyleError("--zero-shot needs no --model: give --backbone instead")
    if backbone is None:
        raise ArtstyleError("--zero-shot needs --backbone, e.g. --backbone clip-vit-b16 (see `artstyle backbones`)")
    from ..model.prompts import parse_labels
    from ..model.zero_shot import zero_shot_classifier

    params.pop("precision", None)  # zero-shot runs fp32: no int8 graph of its own
    return zero_shot_classifier(backbone, parse_labels(labels), weights, **params)


@app.command()
def predict(
    paths: list[str] = typer.Argument(..., help="Image files, folders (recursive) or - to read paths from stdin."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="Model folder written by `artstyle train` (default: the model shipped with artstyle)."
    ),
    zero_shot: bool = typer.Option(False, "--zero-shot", help=ZERO_SHOT_HELP),
    backbone: Optional[str] = typer.Option(None, "--backbone", help=ZS_BACKBONE_HELP),
    labels: Optional[str] = typer.Option(None, "--labels", help=LABELS_HELP),
    weights: Optional[Path] = typer.Option(None, "--weights", help=ZS_WEIGHTS_HELP),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Movements to list per image."),
    fmt: PredictFormat = typer.Option(PredictFormat.table, "--format", help="table, json or csv."),
    batch_size: int = typer.Option(32, min=1, help="Images per forward pass."),
    engine: Engine = typer.Option(Engine.auto, help=ENGINE_HELP),
    precision: Precision = typer.Option(Precision.auto, help=PRECISION_HELP),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help=RAY_HELP),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="With --ray: folder for the Parquet results."),
    resume: bool = typer.Option(False, help="With --ray: add only the paths missing from --out."),
    actors: Optional[int] = typer.Option(None, min=1, help="With --ray: model copies (default: one per CPU of the cluster)."),
    column: str = typer.Option("path", help="With --ray and a .parquet/.csv SOURCE: the column of image paths."),
) -> None:
    """Name the most likely movements of paintings, with calibrated probabilities.

    With --ray, PATHS is one SOURCE (a folder, a .txt file of paths, or a .parquet/.csv
    file with a column of paths; local or a pyarrow URI such as s3://) labelled on a Ray
    cluster into Parquet files under --out (the fields of --format json).
    """
    if ray is not None:
        _predict_on_ray(paths, model, ray, out_dir, top_k, resume, actors, column, precision.value)
        return
    from .output import collect_inputs, to_csv, to_json

    _not_a_model(paths)
    inputs = collect_inputs(paths)
    if not inputs:
        raise ArtstyleError("no images to predict (folders held no image files)")
    clf = _classifier(model, zero_shot, backbone, labels, weights, cache_dir=False, batch_size=batch_size,
                      engine=engine.value, precision=precision.value, show_progress=not _QUIET and len(inputs) > 64)
    results = clf.predict_top_k(inputs, k=min(top_k, len(clf.classes_)))
    if fmt is PredictFormat.json:
        sys.stdout.write(to_json(results) + "\n")
    elif fmt is PredictFormat.csv:
        sys.stdout.write(to_csv(results, top_k))
    else:
        out.print(_prediction_table(results, top_k))
    if all(r.error for r in results):
        raise typer.Exit(1)


@app.command("zero-shot")
def zero_shot_model(
    backbone: str = typer.Option(..., "--backbone", help="The image+text backbone (see `artstyle backbones`: zero-shot)."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Model folder to write."),
    labels: Optional[str] = typer.Option(None, "--labels", help="The movements to choose among, comma-separated "
                                         "(default: the 18 of Pandora18k)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help="The backbone's published checkpoint, when offline "
                                           "(e.g. open_clip_model.safetensors)."),
    graph: bool = typer.Option(True, help="Keep the image tower as an ONNX graph in the folder (about 350 MB for a "
                               "ViT-B): predicting then needs neither torch nor the text tower."),
    batch_size: int = typer.Option(32, min=1, help="Images per forward pass (the detector's calibration pictures)."),
) -> None:
    """Write a zero-shot model folder: movements named from text, no training painting.

    predict, serve, info and evaluate read it like a trained model's folder.
    """
    from ..model.prompts import parse_labels
    from ..model.zero_shot import zero_shot_classifier

    clf = zero_shot_classifier(backbone, parse_labels(labels), weights, cache_dir=False, batch_size=batch_size,
                               show_progress=not _QUIET)
    clf.config_["command"] = shlex.join(["artstyle", *sys.argv[1:]])
    clf.save(out_dir, graphs=graph)
    detector = clf.painting_detector_.fitted_on
    err.print(f"zero-shot model: {len(clf.classes_)} movements named from text on {backbone}; 'not a painting' "
              f"above {clf.painting_detector_.threshold:.0%}, chosen on {detector['basis']} (it flags "
              f"{detector['paintings_flagged']:.0%} and {detector['non_paintings_flagged']:.0%} of them)", soft_wrap=True)
    err.print(f"model saved to [bold]{out_dir}[/bold]; `artstyle predict --model {out_dir} IMAGES`")


PATH_WIDTH = 26  # the image column of `predict`'s table: with the answer and the top three, 80 columns


def _prediction_table(results, top_k: int) -> Table:
    """One row per image: its path (cut from the left), the answer in words, the top-k
    movements one per line; fits an 80-column terminal (CSV and JSON keep whole paths)."""
    from .output import display_path

    table = Table(show_lines=top_k > 1)
    table.add_column("image", no_wrap=True, max_width=PATH_WIDTH)
    table.add_column("answer", ratio=1)
    table.add_column(f"top {top_k}", no_wrap=True)
    for r in results:
        path = escape(display_path(r.path, PATH_WIDTH))
        if r.error:
            table.add_row(path, f"[red]error: {escape(r.error)}[/red]", "")
            continue
        verdict = escape(r.summary)
        if not r.is_painting:
            verdict = f"[yellow]{verdict}[/yellow]"
        elif r.uncertain:
            verdict = f"[dim]{verdict}[/dim]"
        if r.in_training:  # its summary ends "(training painting)": an answer from memory, not skill
            verdict = f"[magenta]{verdict}[/magenta]"
        table.add_row(path, verdict, "\n".join(f"{escape(label)} [dim]{p:.0%}[/dim]" for label, p in r.predictions))
    return table


def _not_a_model(paths: list[str]) -> None:
    """A model folder given where images go (`predict IMG model`): refused with the fix,
    rather than labelling its files with the shipped model."""
    for path in paths:
        if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.json")):
            raise ArtstyleError(f"{path}: is a model folder, not images; pass it as --model {shlex.quote(path)}")


def _predict_on_ray(paths: list[str], model: Path | None, address: str, out_dir: Path | None, k: int, resume: bool,
                    actors: int | None, column: str, precision: str) -> None:
    from .ray_predict import predict_on_ray

    if len(paths) != 1 or out_dir is None:
        raise ArtstyleError("predict --ray takes one SOURCE and --out FOLDER")
    job = predict_on_ray(paths[0], _model_or_default(model), out_dir, k=k, resume=resume,
                         address=address, actors=actors, column=column, precision=precision)
    err.print(f"results written to [bold]{job.out}[/bold]" + (f" ({job.skipped} paths were there already)"
                                                             if job.skipped else ""), soft_wrap=True)


@app.command()
def similar(
    paths: list[str] = typer.Argument(..., help="Image files, folders (recursive) or - to read paths from stdin."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="Model folder written by `artstyle train` (default: the model shipped with artstyle)."
    ),
    k: int = typer.Option(5, "-k", min=1, help="Training paintings to list per image."),
    fmt: PredictFormat = typer.Option(PredictFormat.table, "--format", help="table, json or csv."),
    engine: Engine = typer.Option(Engine.auto, help=ENGINE_HELP),
    precision: Precision = typer.Option(Precision.auto, help=PRECISION_HELP),
) -> None:
    """List the training paintings most similar to each image (cosine similarity of the model's features)."""
    from ..model.classifier import StyleClassifier
    from .output import collect_inputs, display_path, similar_to_csv

    _not_a_model(paths)
    inputs = collect_inputs(paths)
    if not inputs:
        raise ArtstyleError("no images to compare (folders held no image files)")
    clf = StyleClassifier.load(_model_or_default(model), cache_dir=False, engine=engine.value,
                               precision=precision.value, show_progress=not _QUIET and len(inputs) > 64)
    results = clf.similar(inputs, k=k)
    if fmt is PredictFormat.json:
        sys.stdout.write(json.dumps([r.to_dict() for r in results], indent=2) + "\n")
    elif fmt is PredictFormat.csv:
        sys.stdout.write(similar_to_csv(results))
    else:
        from ..data.labels import humanise_artist

        table = Table(show_lines=False, caption="similarity: cosine of the model's features, as a percent")
        for column in ("image", "#", "similar", "movement", "artist", "training painting"):
            table.add_column(column, overflow="fold")
        for r in results:
            if r.error:
                table.add_row(display_path(r.path), "", "", f"[red]error: {r.error}[/red]", "", "")
            if r.itself:
                n = r.itself
                table.add_row(display_path(r.path), "", f"{n.similarity:.0%}", n.movement, humanise_artist(n.artist),
                              f"{n.file} [dim](this image: in the training set)[/dim]")
            for rank, n in enumerate(r.neighbours, 1):
                table.add_row(display_path(r.path) if rank == 1 and not r.itself else "", str(rank),
                              f"{n.similarity:.0%}", n.movement, humanise_artist(n.artist), n.file)
        out.print(table)
    if all(r.error for r in results):
        raise typer.Exit(1)


@app.command()
def explain(
    paths: list[str] = typer.Argument(..., help="Image files, folders (recursive) or - to read paths from stdin."),
    out_dir: Path = typer.Option(..., "--out", "-o", help="Folder to write one <image>.explain.png per image into: "
                                 "the painting beside its heat-map, the movement named, with the colour scale."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="Model folder written by `artstyle train` (default: the model shipped with artstyle)."
    ),
    movement: Optional[str] = typer.Option(None, help="Explain this movement instead of each image's predicted one."),
    max_side: int = typer.Option(640, min=64, help="Longer side of the painting and of its heat-map, in pixels "
                                 "(small paintings are enlarged to it)."),
    overlay_only: bool = typer.Option(False, "--overlay-only", help="Write only the heat-map over the painting, at its own size "
                                      "(at most --max-side)."),
    weights: Optional[Path] = typer.Option(None, "--weights", help=MODEL_WEIGHTS_HELP),
) -> None:
    """Write each painting with a heat-map (Grad-CAM) of what drove the movement's score."""
    from ..files import atomic_write_bytes
    from ..model.classifier import StyleClassifier
    from .output import collect_inputs, display_path, unique_names

    require_torch("explain (heat-maps need the network's gradients)")
    _not_a_model(paths)
    inputs = collect_inputs(paths)
    if not inputs:
        raise ArtstyleError("no images to explain (folders held no image files)")
    # loaded as `predict` loads it: explain names the movement and probability `predict` gives
    clf = StyleClassifier.load(_model_or_default(model), cache_dir=False, show_progress=False, weights=weights)
    out_dir.mkdir(parents=True, exist_ok=True)
    names = unique_names(inputs, ".explain.png")
    failed = 0
    for source, name in zip(inputs, names):
        (result,) = clf.explain([source], movement=movement)
        if result.error:
            err.print(f"error: {display_path(source)}: {result.error}", soft_wrap=True, markup=False, highlight=False)
            failed += 1
            continue
        atomic_write_bytes(out_dir / name, result.png(max_side) if overlay_only else result.panel_png(max_side))
        out.print(f"{display_path(source)}: {result.movement} {result.probability:.0%} -> {out_dir / name}", soft_wrap=True)
    if failed == len(inputs):
        raise typer.Exit(1)


@app.command()
def serve(
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help="Model folder written by `artstyle train` (default: the model shipped with artstyle)."
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(25.0, min=0.001, help="Largest accepted file, in MB (larger: HTTP 413)."),
    max_files: int = typer.Option(16, min=1, help="Most files in one request (more: HTTP 413)."),
    concurrency: int = typer.Option(1, min=1, help="Requests classified at once; the rest wait their turn."),
    max_pending: int = typer.Option(64, min=1, help="Most requests waiting or running (more: HTTP 503)."),
    engine: Engine = typer.Option(Engine.auto, help=ENGINE_HELP),
    precision: Precision = typer.Option(Precision.auto, help=PRECISION_HELP),
    zero_shot: bool = typer.Option(False, "--zero-shot", help=ZERO_SHOT_HELP),
    backbone: Optional[str] = typer.Option(None, "--backbone", help=ZS_BACKBONE_HELP),
    labels: Optional[str] = typer.Option(None, "--labels", help=LABELS_HELP),
    weights: Optional[Path] = typer.Option(None, "--weights", help=ZS_WEIGHTS_HELP),
) -> None:
    """Serve a web page and a REST API (/api/predict, /api/model, /docs) that classify paintings."""
    from .serve import serve as run_server

    clf = _classifier(model, zero_shot, backbone, labels, weights, cache_dir=False, engine=engine.value,
                      precision=precision.value, show_progress=False)
    name = f"{backbone} zero-shot" if zero_shot else _model_or_default(model).resolve().name
    err.print(f"serving model [bold]{name}[/bold] on [bold]http://{host}:{port}/[/bold] "
              f"(API docs at /docs; Ctrl-C stops)")
    run_server(clf, host=host, port=port, model_name=name, max_upload_mb=max_upload_mb,
               max_files=max_files, concurrency=concurrency, max_pending=max_pending)


@app.command()
def check(
    data: list[Path] = typer.Argument(..., help=DATA_HELP),
    fmt: TextOrJson = typer.Option(TextOrJson.text, "--format", help="text or json (every finding, on stdout)."),
    report: Optional[Path] = typer.Option(None, help="Also write a self-contained HTML report with a plot per finding."),
    fix_plan: Optional[Path] = typer.Option(None, help="Write suggested actions as CSV (nothing is changed)."),
    min_side: int = typer.Option(224, min=1, help="Images with a shorter side than this, in pixels, are tiny."),
    near_distance: int = typer.Option(12, min=0, max=127, help="Most differing hash bits (of 128) for a near duplicate."),
) -> None:
    """Check a painting collection before training: counts, sizes, broken files, duplicates, imbalance.

    Reads only: the collection is never modified.
    """
    _folders(data, "painting folder")
    from ..data.doctor import check_dataset, write_fix_plan

    result = check_dataset(data, min_side=min_side, near_distance=near_distance, show_progress=not _QUIET)
    if fmt is TextOrJson.json:
        sys.stdout.write(json.dumps(result.to_dict(), indent=2) + "\n")
    else:
        _print_check(result)
    if report:
        from .check_report import write_check_report

        write_check_report(result, report, title=f"artstyle check of {_names(data)}")
        err.print(f"report written to [bold]{report}[/bold]")
    if fix_plan:
        rows = write_fix_plan(result, fix_plan)
        err.print(f"{rows} suggested action(s) written to [bold]{fix_plan}[/bold]; nothing was changed")


def _print_check(result) -> None:
    d = result.to_dict()
    per_class = Table(title=f"{d['n_images']} images, {d['n_classes']} movements, {d['n_artists']} artists "
                      "(folders such as 'unknown' not counted)")
    for column in ("movement", "images", "artists", "most images by"):
        per_class.add_column(column, justify="left" if column in ("movement", "most images by") else "right")
    under, dominated, largest = set(d["under_represented"]), d["dominated_by_one_artist"], result.largest_artist()
    for label, n in d["class_counts"].items():
        artists = d["artists_per_class"][label]
        top = largest.get(label)
        largest_text = f"{top[0]} ({top[1]:.0%})" if top else ""
        per_class.add_row(label, f"[red]{n}[/red]" if label in under else str(n),
                          f"[yellow]{artists}[/yellow]" if artists < 2 else str(artists),
                          f"[yellow]{largest_text}[/yellow]" if label in dominated else largest_text)
    out.print(per_class)
    sides = d["shortest_side"]
    out.print(f"shortest side: min {sides.get('min')} px, median {sides.get('median')} px, max {sides.get('max')} px; "
              f"imbalance {d['imbalance_ratio']:.1f}x (largest / smallest class)", highlight=False)
    if len(d["sizes"].get("per_source", {})) > 1:
        out.print("median shortest side per source: " + ", ".join(
            f"{name} {q['median']} px" for name, q in d["sizes"]["per_source"].items()), highlight=False)
    sizes = d["sizes"]
    far = [f"{name}: median {sizes['per_movement'][name]['median']} px, {factor:g}x the rest"
           for name, factor in sizes.get("flagged_movements", {}).items()]
    far += [f"source {name}: median {sizes['per_source'][name]['median']} px, {factor:g}x the rest"
            for name, factor in sizes.get("flagged_sources", {}).items()]
    findings = [
        ("unreadable", [f"{u['path']}: {u['reason']}" for u in d["unreadable"]]),
        (f"sizes over {sizes.get('ratio', 2):g}x from the rest (the model may learn size)", far),
        ("exact duplicates", [" = ".join(g["paths"]) + ("  [different movements]" if g["across_classes"] else "")
                              for g in d["exact_duplicates"]]),
        ("near duplicates", [f"{n['a']} ~ {n['b']} (distance {n['distance']})"
                             + ("  [different movements]" if n["across_classes"] else "") for n in d["near_duplicates"]]),
        (f"tiny (shortest side < {d['min_side']} px)", [f"{t['path']} ({t['width']}x{t['height']})" for t in d["tiny"]]),
        ("artists under several movements", [f"{a}: " + ", ".join(f"{k} ({v})" for k, v in c.items())
                                             for a, c in d["artists_in_several_classes"].items()]),
        ("under-represented movements", d["under_represented"]),
        ("movements mostly by one artist", [f"{label}: {top['artist']} ({top['share']:.0%})"
                                            for label, top in dominated.items()]),
    ]
    for name, lines in findings:
        out.print(f"[bold]{name}: {len(lines)}[/bold]", highlight=False)
        for line in lines[:10]:
            out.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
        if len(lines) > 10:
            out.print(f"  ... {len(lines) - 10} more (--format json, --report or --fix-plan list them all)")


@app.command()
def download(
    dataset: str = typer.Argument(..., help="Dataset to fetch: pandora18k."),
    to: Path = typer.Option(..., "--to", help="Folder to put the archive and the unpacked paintings in."),
    url: Optional[str] = typer.Option(None, help="Mirror URL, or a local path / file:// URL of the zip (default: the official URL)."),
    archive: Optional[Path] = typer.Option(None, help="A zip already on disk: unpack it instead of downloading (it is left as is)."),
    sha256: Optional[str] = typer.Option(None, help="Expected SHA-256 of the archive; a mismatch is an error."),
    retries: int = typer.Option(8, min=0, help="Attempts in a row that may fail before giving up (progress resets the count)."),
) -> None:
    """Download a dataset, resuming a broken download, verify it and unpack it safely."""
    from ..data.download import get_dataset

    result = get_dataset(dataset, to, url=url, archive=archive, sha256=sha256, retries=retries,
                         show_progress=not _QUIET)
    if result.already:
        err.print(f"{dataset} is already downloaded and unpacked in {result.folder}; nothing to do", soft_wrap=True)
    else:
        err.print(f"unpacked {result.archive.name} into {result.folder}", soft_wrap=True)
        err.print(f"archive SHA-256 {result.sha256} (pass --sha256 to pin it when fetching again)", soft_wrap=True)
    err.print(f"next: artstyle check {result.data}\n      artstyle train {result.data} --out model", soft_wrap=True,
              highlight=False)


@app.command()
def backbones() -> None:
    """List the feature networks artstyle can train with."""
    from rich import box

    from ..features.backbones import available_backbones

    table = Table(title="Backbones", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, caption="speed: images/s on 2 CPU cores, one view, fp32 "
                  "(fast > 20, medium 10-20, slow 2-10, very slow < 2; docs/notes/performance.md). zero-shot: names "
                  "movements from text (predict --zero-shot)")
    for column in ("name", "input", "download", "licence", "speed", "description"):
        table.add_column(column, no_wrap=column != "description")
    for info in available_backbones():
        download = "in wheel" if info.offline else f"{info.download_mb} MB" if info.download_mb else "its own"
        table.add_row(
            info.name,
            f"{info.input_size} px" if info.input_size else "its own",
            download,
            info.licence or "its own",
            info.speed,
            info.description,
        )
    out.print(table)


@app.command()
def export(
    model: Path = typer.Argument(..., help="Model folder written by `artstyle train`."),
    onnx: Path = typer.Option(..., "--onnx", help="ONNX file to write."),
    weights: Optional[Path] = typer.Option(None, "--weights", help=MODEL_WEIGHTS_HELP),
) -> None:
    """Write a model as one ONNX graph: normalised views in, calibrated probabilities out."""
    require_torch("export (it traces the model with torch)")
    from ..model.classifier import StyleClassifier
    from ..model.export import export_onnx, input_names

    clf = StyleClassifier.load(model, cache_dir=False, show_progress=False, weights=weights)
    export_onnx(clf, onnx)
    shapes = ", ".join(
        f"{name} (batch, {e.preprocessing.n_views}, 3, {e.preprocessing.size}, {e.preprocessing.size})"
        for name, e in zip(input_names(clf), clf.feature_extractors)
    )
    err.print(f"wrote [bold]{onnx}[/bold]: inputs {shapes}; output probabilities (batch, {len(clf.classes_)}); "
              "labels and preprocessing in its metadata")


@app.command()
def quantize(
    model: Path = typer.Argument(..., help="Model folder written by `artstyle train`."),
    data: list[Path] = typer.Argument(..., help="The painting folder(s) it was trained on: its training paintings "
                                      "(found by content) calibrate the int8 ranges."),
    out_dir: Optional[Path] = typer.Option(None, "--out", "-o", help="Write a quantized copy here (default: add the "
                                           "int8 embedding to MODEL itself; its fp32 one stays)."),
    paintings: int = typer.Option(DEFAULT_CALIBRATION, min=1, help="Training paintings to calibrate on, spread over movements and sources."),
    seed: int = typer.Option(0, help="Seed of the calibration draw."),
    weight_range: WeightRange = typer.Option(
        WeightRange.auto, help="int8 weights: full (most accurate; runs as int8 only on CPUs with AVX-512 VNNI or ARM "
        "dot products), reduced (7-bit, for any CPU with AVX2), or auto (what this CPU runs best)."),
) -> None:
    """Add an int8 embedding to a model (about 1.35x fp32's extraction on CPUs with AVX-512 VNNI, less with AVX2
    alone; --precision chooses which runs)."""
    from ..model.quantize import quantize_model

    result = quantize_model(model, data, out=out_dir, paintings=paintings, seed=seed, weight_range=weight_range.value,
                            show_progress=not _QUIET)
    agreement = (f"; int8 names the same movement as fp32 for {result.same_top1:.0%} of {result.compared} other "
                 f"paintings (largest probability change {result.max_abs_diff:.2f})" if result.compared else "")
    err.print(f"wrote the {result.weight_range}-range int8 embedding into [bold]{result.path}[/bold], calibrated on "
              f"{result.calibration} training paintings{agreement}", soft_wrap=True, highlight=False)


@app.command()
def info(
    model: Path = typer.Argument(..., help="Model folder."),
    fmt: InfoFormat = typer.Option(
        InfoFormat.text, "--format",
        help="text, json (the config plus metrics) or markdown (a model card: data, per-class scores, confusions, limits).",
    ),
) -> None:
    """Show what a model folder holds: backbone, movements, data, split and scores."""
    from ..model.bundle import load_bundle
    from ..model.calibration import Abstention
    from ..model.metrics import share_text
    from .model_card import (
        finetune_summary,
        is_zero_shot,
        precision_summary,
        similar_summary,
        size_bands_summary,
        split_summary,
        temperature_summary,
        text_detector_summary,
        trained_on,
    )

    bundle = load_bundle(model)
    config, metrics = bundle.config, bundle.metrics
    if fmt is InfoFormat.json:
        out.print_json(json.dumps({"config": config, "metrics": metrics}))
        return
    if fmt is InfoFormat.markdown:
        from .model_card import model_card

        sys.stdout.write(model_card(bundle, title=model.resolve().name))
        return
    table = Table(title=f"Model {model}", show_header=False)
    table.add_column(style="bold")
    table.add_column()
    split = config.get("split", {})
    table.add_row("artstyle version", str(config.get("artstyle_version")))
    table.add_row("created", str(config.get("created")))
    features = config["features"]
    table.add_row("features", f"{features['recipe']} on " + " + ".join(
        f"{b['name']} ({b['preprocessing']['size']} px)" for b in features["backbones"]))
    for b in features["backbones"]:
        if b.get("finetuned"):
            table.add_row("fine-tuned", finetune_summary(b["finetuned"]))
    table.add_row("embedding", precision_summary(config, here=True))
    table.add_row("head", f"{config['head'].get('kind', config['head']['type'])}")
    if config["head"].get("size_bands"):
        table.add_row("size bands", size_bands_summary(config["head"]["size_bands"]))
    table.add_row("movements", f"{len(config['labels'])}: " + ", ".join(config["labels"]))
    if is_zero_shot(config):
        table.add_row("trained on", "no paintings: movements named from text (accuracy not measured; "
                      f"`artstyle evaluate {model} PAINTINGS` measures it)")
        table.add_row("flags", f"{Abstention.from_config(config).describe()}; "
                      f"{text_detector_summary(config['painting_detector'])}")
        out.print(table)
        return
    table.add_row("trained on", trained_on(config, bundle.splits_csv))
    table.add_row("split", split_summary(split))
    table.add_row("temperature", temperature_summary(config))
    table.add_row("flags", Abstention.from_config(config).describe() + "; "
                  + ("painting detector on" if config.get("painting_detector") else "no painting detector"))
    if metrics.get("n_images"):
        n = metrics["n_images"]
        table.add_row(
            "held-out scores",
            f"{metrics.get('evaluated_on', 'held out')}: accuracy {share_text(metrics['accuracy'], n)}, top-3 "
            f"{share_text(metrics['top3_accuracy'], n)}, macro-F1 {metrics['macro_f1']:.3f}, ECE {metrics['ece']:.3f}",
        )
        for band, m in (metrics.get("by_size") or {}).items() if len(metrics.get("by_size") or {}) > 1 else ():
            table.add_row(f"  {band}", f"accuracy {share_text(m['accuracy'], m['n_images'])}, top-3 "
                          f"{share_text(m['top3_accuracy'], m['n_images'])}")
    if metrics.get("untested"):
        table.add_row("untested", ", ".join(metrics["untested"]))
    table.add_row("similar paintings", similar_summary(config["similar"]) if config.get("similar") else
                  "no index (trained by an older artstyle)")
    out.print(table)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except ArtstyleError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}", highlight=False, markup=True, soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()

"""`artstyle predict`, `zero-shot`, `similar` and `explain`: answers for images."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.markup import escape
from rich.table import Table

from ..errors import ArtstyleError, require_torch
from .cli_common import (
    ENGINE_HELP,
    LABELS_HELP,
    MODEL_HELP,
    MODEL_WEIGHTS_HELP,
    PRECISION_HELP,
    RAY_HELP,
    STATE,
    ZERO_SHOT_HELP,
    ZS_BACKBONE_HELP,
    ZS_WEIGHTS_HELP,
    Engine,
    Precision,
    PredictFormat,
    app,
    classifier_for,
    err,
    model_or_default,
    out,
    refuse_model_as_images,
)


@app.command()
def predict(
    paths: list[str] = typer.Argument(..., help="Image files, folders (recursive), manifests, http(s) image URLs, IIIF "
                                      "image services (info.json) or manifests, or - to read paths from stdin."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help=MODEL_HELP
    ),
    zero_shot: bool = typer.Option(False, "--zero-shot", help=ZERO_SHOT_HELP),
    backbone: Optional[str] = typer.Option(None, "--backbone", help=ZS_BACKBONE_HELP),
    labels: Optional[str] = typer.Option(None, "--labels", help=LABELS_HELP),
    weights: Optional[Path] = typer.Option(None, "--weights", help=ZS_WEIGHTS_HELP),
    top_k: int = typer.Option(3, "--top-k", "-k", min=1, help="Movements to list per image."),
    fmt: PredictFormat = typer.Option(PredictFormat.table, "--format", help="table, json or csv."),
    batch_size: int = typer.Option(32, min=1, help="Images per forward pass."),
    engine: Engine = typer.Option(Engine("auto"), help=ENGINE_HELP),
    precision: Precision = typer.Option(Precision("auto"), help=PRECISION_HELP),
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
    from .output import collect_inputs, fetch_inputs, predict_inputs, to_csv, to_json

    refuse_model_as_images(paths)
    images = fetch_inputs(collect_inputs(paths))
    if not images:
        raise ArtstyleError("no images to predict (folders held no image files)")
    clf = classifier_for(model, zero_shot, backbone, labels, weights, cache_dir=False, batch_size=batch_size,
                         engine=engine.value, precision=precision.value, show_progress=not STATE.quiet and len(images) > 64)
    results = predict_inputs(clf, images, min(top_k, len(clf.classes_)))
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
                               show_progress=not STATE.quiet)
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


def _predict_on_ray(paths: list[str], model: Path | None, address: str, out_dir: Path | None, k: int, resume: bool,
                    actors: int | None, column: str, precision: str) -> None:
    from .ray_predict import predict_on_ray

    if len(paths) != 1 or out_dir is None:
        raise ArtstyleError("predict --ray takes one SOURCE and --out FOLDER")
    job = predict_on_ray(paths[0], model_or_default(model), out_dir, k=k, resume=resume,
                         address=address, actors=actors, column=column, precision=precision)
    err.print(f"results written to [bold]{job.out}[/bold]" + (f" ({job.skipped} paths were there already)"
                                                             if job.skipped else ""), soft_wrap=True)


@app.command()
def similar(
    paths: list[str] = typer.Argument(..., help="Image files, folders (recursive) or - to read paths from stdin."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help=MODEL_HELP
    ),
    k: int = typer.Option(5, "-k", min=1, help="Training paintings to list per image."),
    fmt: PredictFormat = typer.Option(PredictFormat.table, "--format", help="table, json or csv."),
    engine: Engine = typer.Option(Engine("auto"), help=ENGINE_HELP),
    precision: Precision = typer.Option(Precision("auto"), help=PRECISION_HELP),
) -> None:
    """List the training paintings most similar to each image (cosine similarity of the model's features)."""
    from ..model.classifier import StyleClassifier
    from .output import collect_inputs, display_path, similar_to_csv

    refuse_model_as_images(paths)
    inputs = collect_inputs(paths)
    if not inputs:
        raise ArtstyleError("no images to compare (folders held no image files)")
    clf = StyleClassifier.load(model_or_default(model), cache_dir=False, engine=engine.value,
                               precision=precision.value, show_progress=not STATE.quiet and len(inputs) > 64)
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
        None, "--model", "-m", help=MODEL_HELP
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
    refuse_model_as_images(paths)
    inputs = collect_inputs(paths)
    if not inputs:
        raise ArtstyleError("no images to explain (folders held no image files)")
    # loaded as `predict` loads it: explain names the movement and probability `predict` gives
    clf = StyleClassifier.load(model_or_default(model), cache_dir=False, show_progress=False, weights=weights)
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

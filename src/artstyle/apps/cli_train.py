"""`artstyle train` and `artstyle evaluate`, and the tables of scores they print."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..features.finetune_recipe import FineTuning
from ..features.recipes import DEFAULT_BACKBONE, DEFAULT_RECIPE, RECIPES
from ..features.size_variants import DEFAULT_COPIES
from ..model.balancing import DEFAULT_BALANCING
from .cli_common import (
    DATA_HELP,
    ENGINE_HELP,
    PRECISION_HELP,
    RAY_HELP,
    STATE,
    Device,
    Engine,
    Precision,
    SplitMode,
    TextOrJson,
    app,
    check_folders,
    err,
    folder_names,
    model_then_data,
    out,
)


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
        if metrics.get("families"):
            summary.add_row("movement family top-1", share_text(metrics["family_accuracy"], n))
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
    engine: Engine = typer.Option(Engine("auto"), help=ENGINE_HELP),
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
    check_folders(data, "painting folder")  # before the heavy imports: a typo answers at once
    from ..features.size_variants import SizeVariants
    from ..model.classifier import StyleClassifier

    tuning = FineTuning(stages=stages, epochs=epochs, lr=lr, batch_size=finetune_batch, seed=seed) if finetune else None
    clf = StyleClassifier(
        backbone, features=features, head=head, weights=weights, split=split.value, test_fraction=test_fraction, negatives=negatives, seed=seed, cache_dir=cache_dir,
        batch_size=batch_size, engine=engine.value, finetune=tuning, device=device.value, thumbnails=thumbnails,
        ray=ray, balance=balance, size_variants=SizeVariants(copies=size_variants) if size_variants else None,
        text_prior=text_prior, show_progress=not STATE.quiet,
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
    data: list[Path] = typer.Argument(..., help="Labelled painting folder(s) or manifests to score; several merge as one."),
    fmt: TextOrJson = typer.Option(TextOrJson.text, "--format", help="text: tables; json: one JSON object on stdout."),
    report: Optional[Path] = typer.Option(None, help="Also write a self-contained HTML report here."),
    all_images: bool = typer.Option(False, "--all", help="Score every image, including those used in training."),
    strict: bool = typer.Option(False, help="Refuse a folder with movements the model does not know (default: count them as misses)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Feature cache folder (default: user cache dir)."),
    engine: Engine = typer.Option(Engine("auto"), help=ENGINE_HELP),
    precision: Precision = typer.Option(Precision("auto"), help=PRECISION_HELP),
    ray: Optional[str] = typer.Option(None, "--ray", metavar="ADDRESS", help="Extract features on Ray. " + RAY_HELP),
) -> None:
    """Score a model on a labelled painting folder (its held-out part if it is the training folder)."""
    model_then_data(model, data, "evaluate")
    from ..model.classifier import StyleClassifier

    clf = StyleClassifier.load(model, cache_dir=cache_dir, engine=engine.value, precision=precision.value, ray=ray,
                               show_progress=not STATE.quiet)
    evaluation = clf.evaluate(data, include_training=all_images, strict=strict)
    if fmt is TextOrJson.json:
        out.print_json(json.dumps(evaluation.metrics))
    else:
        for table in _metrics_tables(evaluation.metrics):
            out.print(table)
    if report is not None:
        from .report import write_report

        write_report(evaluation, report, title=f"artstyle evaluation of {model.name} on {folder_names(data)}", clf=clf)
        err.print(f"report written to [bold]{report}[/bold]")

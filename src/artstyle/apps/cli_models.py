"""`artstyle backbones`, `export`, `quantize` and `info`: networks and model folders."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from ..errors import require_torch
from ..features.int8 import DEFAULT_CALIBRATION
from .cli_common import (
    MODEL_WEIGHTS_HELP,
    STATE,
    InfoFormat,
    WeightRange,
    app,
    err,
    out,
)


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
        WeightRange("auto"), help="int8 weights: full (most accurate; runs as int8 only on CPUs with AVX-512 VNNI or ARM "
        "dot products), reduced (7-bit, for any CPU with AVX2), or auto (what this CPU runs best)."),
) -> None:
    """Add an int8 embedding to a model (about 1.35x fp32's extraction on CPUs with AVX-512 VNNI, less with AVX2
    alone; --precision chooses which runs)."""
    from ..model.quantize import quantize_model

    result = quantize_model(model, data, out=out_dir, paintings=paintings, seed=seed, weight_range=weight_range.value,
                            show_progress=not STATE.quiet)
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
    from ..model.metrics import family_text, share_text
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
            f"{share_text(metrics['top3_accuracy'], n)}, macro-F1 {metrics['macro_f1']:.3f}, ECE {metrics['ece']:.3f}"
            + (f"; {family}" if (family := family_text(metrics)) else ""),
        )
        for band, m in (metrics.get("by_size") or {}).items() if len(metrics.get("by_size") or {}) > 1 else ():
            table.add_row(f"  {band}", f"accuracy {share_text(m['accuracy'], m['n_images'])}, top-3 "
                          f"{share_text(m['top3_accuracy'], m['n_images'])}")
    if metrics.get("untested"):
        table.add_row("untested", ", ".join(metrics["untested"]))
    table.add_row("similar paintings", similar_summary(config["similar"]) if config.get("similar") else
                  "no index (trained by an older artstyle)")
    out.print(table)

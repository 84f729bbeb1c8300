"""`artstyle serve`: the web page and the REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .cli_common import (
    ENGINE_HELP,
    LABELS_HELP,
    PRECISION_HELP,
    ZERO_SHOT_HELP,
    ZS_BACKBONE_HELP,
    ZS_WEIGHTS_HELP,
    Engine,
    Precision,
    app,
    classifier_for,
    err,
    model_or_default,
)


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

    clf = classifier_for(model, zero_shot, backbone, labels, weights, cache_dir=False, engine=engine.value,
                         precision=precision.value, show_progress=False)
    name = f"{backbone} zero-shot" if zero_shot else model_or_default(model).resolve().name
    err.print(f"serving model [bold]{name}[/bold] on [bold]http://{host}:{port}/[/bold] "
              f"(API docs at /docs; Ctrl-C stops)")
    run_server(clf, host=host, port=port, model_name=name, max_upload_mb=max_upload_mb,
               max_files=max_files, concurrency=concurrency, max_pending=max_pending)

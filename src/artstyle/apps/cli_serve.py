"""`artstyle serve`: the web page and the REST API."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ArtstyleError
from .cli_common import (
    ENGINE_HELP,
    LABELS_HELP,
    MODEL_HELP,
    PRECISION_HELP,
    STATE,
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

REVIEW_HELP = "Also serve the review page (/review) of these images: folders, manifests or URLs (as `review`)."
LABELS_CSV_HELP = ("Where decisions are saved (a manifest: `artstyle train` reads it); reopening it resumes. "
                   "Its folder also keeps the review's caches (.artstyle-review).")


@app.command()
def serve(
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help=MODEL_HELP
    ),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    max_upload_mb: float = typer.Option(25.0, min=0.001, help="Largest accepted file, in MB (larger: HTTP 413)."),
    max_files: int = typer.Option(16, min=1, help="Most files in one request (more: HTTP 413)."),
    concurrency: int = typer.Option(1, min=1, help="Requests classified at once; the rest wait their turn."),
    max_pending: int = typer.Option(64, min=1, help="Most requests waiting or running (more: HTTP 503)."),
    engine: Engine = typer.Option(Engine("auto"), help=ENGINE_HELP),
    precision: Precision = typer.Option(Precision("auto"), help=PRECISION_HELP),
    zero_shot: bool = typer.Option(False, "--zero-shot", help=ZERO_SHOT_HELP),
    backbone: Optional[str] = typer.Option(None, "--backbone", help=ZS_BACKBONE_HELP),
    labels: Optional[str] = typer.Option(None, "--labels", help=LABELS_HELP),
    weights: Optional[Path] = typer.Option(None, "--weights", help=ZS_WEIGHTS_HELP),
    review: Optional[list[str]] = typer.Option(None, "--review", help=REVIEW_HELP),
    allow_urls: bool = typer.Option(False, "--allow-urls", help="Turn on /api/predict-urls: visitors may then make "
                                    "this server fetch URLs they name (off: no server-side request forgery)."),
    labels_csv: Path = typer.Option(Path("labels.csv"), "--labels-csv", help=LABELS_CSV_HELP),
) -> None:
    """Serve a web page and a REST API (/api/predict, /api/model, /docs) that classify paintings."""
    from .serve import serve as run_server

    clf = classifier_for(model, zero_shot, backbone, labels, weights, cache_dir=False, engine=engine.value,
                         precision=precision.value, show_progress=False)
    name = f"{backbone} zero-shot" if zero_shot else model_or_default(model).resolve().name
    extend = _review_routes(clf, review, labels_csv, name, None if zero_shot else model_or_default(model)) if review else None
    err.print(f"serving model [bold]{name}[/bold] on [bold]http://{host}:{port}/[/bold] "
              f"(API docs at /docs{'; review at /review' if review else ''}; Ctrl-C stops)")
    run_server(clf, host=host, port=port, model_name=name, max_upload_mb=max_upload_mb,
               max_files=max_files, concurrency=concurrency, max_pending=max_pending, extend=extend,
               allow_urls=allow_urls)


def _review_routes(clf, sources: list[str], labels_csv: Path, name: str, model_folder: Path | None):
    """Predict every image once (cached beside labels.csv, resumable, with progress) and
    return what adds the review page to the app."""
    from ..data.remote import is_url
    from ..progress import progress_bar
    from .review_app import add_review_routes
    from .review_store import AnswerCache, LabelStore, ReviewSession, model_id, review_folder, review_items

    for source in sources:
        if not is_url(source) and not Path(source).exists():
            raise ArtstyleError(f"{source}: no such folder, manifest or image")
    items = review_items(sources)
    if not items:
        raise ArtstyleError(f"{', '.join(map(str, sources))}: no images to review")
    labels_csv = labels_csv.expanduser().resolve()
    cache = review_folder(labels_csv)
    fingerprint = model_id(model_folder) if model_folder is not None else name.replace(" ", "-")
    answers_cache = AnswerCache(cache, fingerprint)
    with progress_bar(len(items), "Predicting", enabled=not STATE.quiet) as advance:
        answers = answers_cache.fill(items, lambda files: [{**p.to_dict(), "summary": p.summary}
                                                           for p in clf.predict_top_k(files, k=5)], advance)
    session = ReviewSession(items, answers, LabelStore(labels_csv), [str(c) for c in clf.classes_])
    decided = sum(1 for item in items if session.labels.decision(item) is not None)
    err.print(f"{len(items):,} images to review; {decided:,} decided already in [bold]{labels_csv}[/bold]", soft_wrap=True)
    return lambda app: add_review_routes(app, session, cache, name)


@app.command()
def review(
    data: list[str] = typer.Argument(..., help="Images to review: folders (recursive), manifests (.csv/.jsonl), "
                                     "image URLs, IIIF image services or manifests."),
    model: Optional[Path] = typer.Option(
        None, "--model", "-m", help=MODEL_HELP
    ),
    labels_csv: Path = typer.Option(Path("labels.csv"), "--labels-csv", help=LABELS_CSV_HELP),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on (0.0.0.0: every interface)."),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
) -> None:
    """Review a collection in the browser: sort and filter the model's answers, accept or
    correct them with the keyboard; every decision is saved at once to labels.csv, which
    `artstyle train labels.csv` learns from."""
    from .serve import serve as run_server

    folder = model_or_default(model)
    clf = classifier_for(model, False, None, None, None, cache_dir=False, show_progress=False)
    extend = _review_routes(clf, data, labels_csv, folder.resolve().name, folder)
    err.print(f"review at [bold]http://{host}:{port}/review[/bold] (Ctrl-C stops; decisions are already saved)")
    run_server(clf, host=host, port=port, model_name=folder.resolve().name, extend=extend)

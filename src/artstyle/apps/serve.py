"""`artstyle serve`: a web page and a REST API around one loaded model.

/api/predict answers with the same JSON as `artstyle predict --format json`; /api/explain
with the heat-map overlay (PNG) of `artstyle explain`; /api/similar with the training
paintings `artstyle similar` lists, each with the URL of its thumbnail when the model keeps one. Requests are
admitted before their body is read: a body over the size limit is cut off with 413, and
beyond `max_pending` waiting requests the server answers 503 rather than queueing
without end. Inference runs in a worker thread, `concurrency` at a time, so the event
loop keeps serving the page, health checks and uploads meanwhile.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated

import anyio
from fastapi import FastAPI, File, Form, HTTPException, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi_offline import FastAPIOffline
from PIL import Image
from pydantic import BaseModel, Field

from .. import __version__
from ..data.images import probe_image
from ..data.remote import is_url
from ..errors import ArtstyleError, ImageLoadError, require_torch
from ..model.classifier import StyleClassifier
from .output import fetch_inputs, predict_inputs

DEFAULT_MAX_UPLOAD_MB = 25.0
DEFAULT_MAX_FILES = 16
DEFAULT_MAX_PENDING = 64
EXPLAIN_SIDE = 768  # longer side of /api/explain overlays
PREDICT_PATH = "/api/predict"
UPLOAD_PATHS = (PREDICT_PATH, "/api/explain", "/api/similar")  # bounded by the admission middleware


class LabelProbability(BaseModel):
    label: str
    probability: float


class FamilyOut(BaseModel):
    """The most probable movement family, its probability (the sum over its movements) and
    its most probable movement."""

    name: str
    probability: float
    movement: str
    movement_probability: float


class UrlsIn(BaseModel):
    """Images by URL, and how many movements to list per image."""

    urls: list[str] = Field(min_length=1, max_length=DEFAULT_MAX_FILES)
    top_k: int = Field(3, ge=1)


class PredictionOut(BaseModel):
    """One uploaded file: its top-k movements and flags, or why it could not be read.
    `in_training`: the file is one of the model's training paintings (filed under
    `training_movement`): its answer is memory, not skill."""

    path: str
    predictions: list[LabelProbability]
    uncertain: bool | None
    mixed: list[str] | None
    is_painting: bool | None
    not_painting_kind: str | None = None
    in_training: bool | None = None
    training_movement: str | None = None
    family: FamilyOut | None = None
    family_first: bool | None = None
    error: str | None


class NeighbourOut(BaseModel):
    """A training painting near the upload; `thumbnail`: its URL, when the model keeps one."""

    index: int
    movement: str
    artist: str
    artist_name: str  # the artist folder as a person reads it ("Peter Paul Rubens")
    file: str
    similarity: float
    thumbnail: str | None


class SimilarOut(BaseModel):
    """`in_training`: the training painting the upload is itself (kept out of `neighbours`)."""

    path: str
    in_training: NeighbourOut | None = None
    neighbours: list[NeighbourOut]
    error: str | None


class Problem(BaseModel):
    detail: str
    results: list[PredictionOut] | list[SimilarOut] | None = None


UPLOAD_PROBLEMS = {
    413: {"model": Problem, "description": "a file or the request is too large (a decompression bomb too), or too many files"},
    415: {"model": Problem, "description": "no file is an image"},
    422: {"model": Problem, "description": "no file could be decoded, or no files were sent"},
    503: {"model": Problem, "description": "too many requests are waiting"},
}


class _Rejected(HTTPException):
    """Raised from inside the body stream, so FastAPI's body parsing passes it through."""


class _Admission:
    """ASGI middleware in front of the POSTs that take uploads: bounded waiting, bounded bodies."""

    def __init__(self, app, max_body: int, max_pending: int):
        self.app = app
        self.max_body = max_body
        self.max_pending = max_pending
        self.pending = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http" or scope["path"] not in UPLOAD_PATHS or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_body:
            await _problem(413, f"request body of {_mb(int(length))} is over the {_mb(self.max_body)} limit")(
                scope, receive, send)
            return
        if self.pending >= self.max_pending:
            response = _problem(503, f"busy: {self.pending} requests are waiting; try again shortly")
            response.headers["Retry-After"] = "1"
            await response(scope, receive, send)
            return
        received = 0

        async def limited_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_body:
                raise _Rejected(413, f"request body is over the {_mb(self.max_body)} limit")
            return message

        self.pending += 1
        try:
            await self.app(scope, limited_receive, send)
        finally:
            self.pending -= 1


def _problem(status: int, detail: str, results: list[dict] | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail} if results is None else {"detail": detail, "results": results}, status_code=status)


def _mb(n_bytes: float) -> str:
    return f"{n_bytes / 1e6:.1f} MB"


def _save_uploads(files: list[UploadFile], folder: Path) -> list[Path]:
    """Uploads as files, so decoding takes the same path as on the command line. Named by
    position, never by the client's file name, which is only echoed back."""
    paths = []
    for i, upload in enumerate(files):
        paths.append(folder / str(i))
        with paths[-1].open("wb") as handle:
            shutil.copyfileobj(upload.file, handle)
    return paths


def _header_problem(path: Path) -> ImageLoadError | None:
    """Why an upload cannot be an image, from its header alone (decoding comes later)."""
    try:
        probe_image(path)
    except ImageLoadError as exc:
        return exc
    return None


def _failure_status(kinds: list[str]) -> int:
    """415 when no file is an image, 413 when one was refused as too large, else 422."""
    if kinds and all(kind == "not_image" for kind in kinds):
        return 415
    return 413 if "too_large" in kinds else 422


def model_summary(clf: StyleClassifier, name: str) -> dict:
    """What `GET /api/model` says: enough for a client to label and judge the answers."""
    config = clf.config_
    index = getattr(clf, "similar_", None)
    held_out = config["head"].get("held_out")
    detector = config["head"].get("painting_detector") or {}
    metrics = {k: v for k, v in (clf.metrics_ or {}).items() if not isinstance(v, (dict, list))}
    return {
        "name": name,
        "artstyle_version": config.get("artstyle_version"),
        "labels": [str(c) for c in clf.classes_],
        "recipe": config["features"]["recipe"],
        "backbones": [
            {"name": b["name"], "weights_id": b.get("weights_id"), "input_size": b["preprocessing"]["size"]}
            for b in config["features"]["backbones"]
        ],
        "precision": getattr(clf, "precision_", "fp32"),  # of the embedding that runs (`--precision`)
        "head": config["head"].get("kind", config["head"].get("type")),
        "uncertain_below": clf.abstention_.uncertain_below,
        "mixed_within": clf.abstention_.mixed_margin,
        # "held-out": fitted on `fitted_on` held-out answers; "default": too few of them to fit
        "flags_basis": {"basis": clf.abstention_.basis, "fitted_on": clf.abstention_.fitted_on},
        # how often held-out paintings of unseen artists were answered sure, and right when sure
        "held_out": {k: held_out.get(k) for k in ("n_images", "sure_share", "accuracy_when_sure")} if held_out else None,
        "painting_detector": {  # the shares of held-out paintings and non-paintings it flagged, of how many
            "paintings_flagged": detector.get("held_out_paintings_flagged"),
            "paintings": detector.get("held_out_paintings"),
            "non_paintings_flagged": detector.get("held_out_negatives_flagged"),
            "non_paintings": detector.get("negatives"),
        } if clf.painting_detector_ is not None else None,
        "training": {k: config.get("dataset", {}).get(k) for k in ("n_images", "n_artists", "class_counts")},
        "similar": {"paintings": len(index), "thumbnails": bool(index.thumbnails)} if index is not None else None,
        "metrics": metrics,
        "scores": scores_with_intervals(clf.metrics_ or {}),
    }


def scores_with_intervals(metrics: dict) -> list[dict]:
    """The headline shares with their n and 95 % Wilson interval: overall, then per size band
    when there are several (a small web copy and a full-size scan fare differently)."""
    from ..model.metrics import wilson_interval

    def row(name: str, m: dict) -> dict:
        n = m["n_images"]
        return {"name": name, "n_images": n, **{key: {"share": m[key], "interval": list(wilson_interval(m[key], n))}
                                               for key in ("accuracy", "top3_accuracy")}}

    if not metrics.get("n_images"):
        return []
    bands = metrics.get("by_size") or {}
    return [row("all", metrics), *(row(band, m) for band, m in bands.items() if len(bands) > 1)]


def create_app(
    classifier: StyleClassifier,
    *,
    model_name: str = "model",
    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB,
    max_files: int = DEFAULT_MAX_FILES,
    concurrency: int = 1,
    max_pending: int = DEFAULT_MAX_PENDING,
    allow_urls: bool = False,
) -> FastAPI:
    """The app for a fitted or loaded `classifier`; limits as `artstyle serve --help` describes.
    `allow_urls` turns on /api/predict-urls: off by default, as it makes the server fetch
    whatever URL a visitor names (server-side request forgery)."""
    classifier._check_fitted()
    max_file_bytes = int(max_upload_mb * 1e6)
    limiter = anyio.CapacityLimiter(concurrency)
    summary = model_summary(classifier, model_name)
    n_classes = len(summary["labels"])

    def predict_files(paths: list[Path], names: list[str], k: int) -> list[dict]:
        results = classifier.predict_top_k(paths, k=k)
        out = []
        for name, result in zip(names, results):
            result.path = name
            out.append(result.to_dict())
        return out

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Build the engine before the first visitor waits for it.
        with tempfile.TemporaryDirectory() as tmp:
            warm = Path(tmp) / "warm.png"
            Image.new("RGB", (64, 48), (120, 90, 60)).save(warm)
            await anyio.to_thread.run_sync(predict_files, [warm], ["warm.png"], 1, limiter=limiter)
        yield

    app = FastAPIOffline(  # FastAPI whose /docs (Swagger UI) loads from files that ship, not a CDN
        favicon_url="/favicon.ico",
        static_url="/static-docs",
        title="artstyle",
        version=__version__,
        description="Name the art movement of paintings, with calibrated top-k probabilities.",
        lifespan=lifespan,
    )
    @app.exception_handler(RequestValidationError)
    async def one_line_validation_error(request, exc: RequestValidationError) -> JSONResponse:
        """A malformed request gets the same one-line `detail` as every other error."""
        problems = []
        for error in exc.errors():
            field = ".".join(str(part) for part in error.get("loc", ()) if part != "body")
            if field == "files" and error.get("type") == "missing":
                problems.append("no files sent: post one or more images as the multipart field 'files'")
            else:
                problems.append(f"{field}: {error.get('msg', 'invalid')}" if field else error.get("msg", "invalid"))
        return _problem(422, "; ".join(problems) or "invalid request")

    app.add_middleware(_Admission, max_body=max_files * max_file_bytes + 1_000_000, max_pending=max_pending)
    web = resources.files("artstyle.apps") / "web"
    app.mount("/static", StaticFiles(directory=str(web)), name="static")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    def page() -> str:
        return (web / "index.html").read_text(encoding="utf-8")

    @app.get("/favicon.ico", include_in_schema=False)
    def favicon() -> Response:
        return Response((web / "favicon.svg").read_bytes(), media_type="image/svg+xml",
                        headers={"Cache-Control": "max-age=86400"})

    @app.get("/api/health")
    def health() -> dict:
        """Liveness: the model is loaded and answering."""
        return {"status": "ok", "model": model_name}

    @app.get("/api/model")
    def model() -> dict:
        """Labels, backbone(s), embedding precision, head, the "uncertain" threshold and the training metrics."""
        return summary

    async def answer_uploads(files: list[UploadFile], work, error_row) -> list[dict] | JSONResponse:
        """Run `work(paths, names)` on the uploads that look like images, in the worker
        thread; the others get `error_row(name, reason)`. When no file could be answered,
        a problem response (415 / 413 / 422) instead."""
        if len(files) > max_files:
            return _problem(413, f"{len(files)} files in one request; the limit is {max_files}")
        names = [upload.filename or f"file {i + 1}" for i, upload in enumerate(files)]
        for name, upload in zip(names, files):
            if upload.size is not None and upload.size > max_file_bytes:
                return _problem(413, f"{name}: {_mb(upload.size)} is over the {_mb(max_file_bytes)} limit per file")
        with tempfile.TemporaryDirectory(prefix="artstyle-upload-") as tmp:
            paths = await anyio.to_thread.run_sync(_save_uploads, files, Path(tmp))
            problems = [_header_problem(path) for path in paths]
            readable = [i for i, problem in enumerate(problems) if problem is None]
            results: list[dict | None] = [None] * len(paths)
            if readable:
                answered = await anyio.to_thread.run_sync(
                    work, [paths[i] for i in readable], [names[i] for i in readable], limiter=limiter)
                for i, result in zip(readable, answered):
                    results[i] = result
        kinds = []
        for i, name in enumerate(names):
            if results[i] is None:
                kinds.append(problems[i].kind)
                results[i] = error_row(name, str(problems[i]))
            elif results[i]["error"]:
                kinds.append("undecodable")
        if all(r["error"] for r in results):
            return _problem(_failure_status(kinds), "; ".join(f"{r['path']}: {r['error']}" for r in results), results)
        return results

    @app.post("/api/predict-urls", response_model=list[PredictionOut])
    async def predict_urls(request: UrlsIn):
        """Top-k movements of images by URL (http(s) images, IIIF image services and
        manifests), fetched within `data.remote`'s limits; 403 unless the server was started
        with --allow-urls."""
        if not allow_urls:
            return _problem(403, "fetching URLs is off: start the server with --allow-urls (it lets visitors make "
                                 "this server request any URL they name)")
        if not all(is_url(url) for url in request.urls):
            return _problem(422, "urls: only http(s) URLs are fetched")

        def run() -> list[dict]:
            return [r.to_dict() for r in predict_inputs(classifier, fetch_inputs(request.urls), min(request.top_k, n_classes))]
        return await anyio.to_thread.run_sync(run, limiter=limiter)

    @app.post(PREDICT_PATH, response_model=list[PredictionOut], responses=UPLOAD_PROBLEMS)
    async def predict(
        files: Annotated[list[UploadFile], File(description="One or more images.")],
        top_k: Annotated[int, Form(ge=1, description="Movements to list per image.")] = 3,
    ):
        """Top-k movements per image, same JSON as `artstyle predict --format json` (path =
        the uploaded file name). In a request with several files, an unreadable one gets an
        `error` and the rest are still answered; when none can be read the status is 415
        (no file is an image), 413 (an image refused as a decompression bomb) or 422
        (images that fail to decode)."""
        return await answer_uploads(
            files, lambda paths, names: predict_files(paths, names, min(top_k, n_classes)),
            lambda name, reason: PredictionOut(path=name, predictions=[], uncertain=None, mixed=None,
                                               is_painting=None, error=reason).model_dump())

    index = getattr(classifier, "similar_", None)

    def linked(neighbour) -> dict:
        """A neighbour with its thumbnail as a URL, not inline: the page loads what it shows."""
        return {**neighbour.to_dict(), "thumbnail": f"api/thumbnails/{neighbour.index}" if neighbour.has_thumbnail else None}

    def similar_files(paths: list[Path], names: list[str], k: int) -> list[dict]:
        return [
            {**result.to_dict(), "path": name, "neighbours": [linked(n) for n in result.neighbours],
             "in_training": linked(result.itself) if result.itself else None}
            for name, result in zip(names, classifier.similar(paths, k=k))
        ]

    @app.post("/api/similar", response_model=list[SimilarOut], responses=UPLOAD_PROBLEMS)
    async def similar(
        files: Annotated[list[UploadFile], File(description="One or more images.")],
        k: Annotated[int, Form(ge=1, le=100, description="Training paintings to list per image.")] = 5,
    ):
        """The k training paintings most similar to each image (cosine similarity of the
        model's features), with movement, artist, file and thumbnail URL; statuses as
        /api/predict."""
        if index is None:
            return _problem(404, "this model keeps no similarity index (trained by an older artstyle)")
        return await answer_uploads(files, lambda paths, names: similar_files(paths, names, k),
                                    lambda name, reason: {"path": name, "neighbours": [], "error": reason})

    @app.get("/api/thumbnails/{number}", response_class=Response,
             responses={200: {"content": {"image/webp": {}}}, 404: {"model": Problem}})
    def thumbnail(number: int) -> Response:
        """A training painting's thumbnail (WebP), as /api/similar links them."""
        if index is None or not index.thumbnails or not 0 <= number < len(index) or not index.thumbnails[number]:
            return _problem(404, f"no thumbnail {number}: the model keeps none for it")
        return Response(index.thumbnails[number], media_type="image/webp",
                        headers={"Cache-Control": "public, max-age=86400"})

    def explain_file(paths: list[Path], names: list[str], movement: str | None) -> list[dict]:
        (result,) = classifier.explain(paths, movement=movement)  # the movement and number /api/predict gives
        if result.error:
            return [{"path": names[0], "error": result.error}]
        return [{"path": names[0], "error": None, "png": result.png(EXPLAIN_SIDE), "movement": result.movement,
                 "probability": result.probability}]

    @app.post("/api/explain", response_class=Response,
              responses={200: {"content": {"image/png": {}}, "description": "the painting with the heat-map"},
                         **UPLOAD_PROBLEMS})
    async def explain(
        file: Annotated[UploadFile, File(description="One image.")],
        movement: Annotated[str | None, Form(description="Movement to explain (default: the predicted one).")] = None,
    ):
        """The painting with a Grad-CAM heat-map of what drove the movement's score (PNG,
        longer side at most 768 px). Headers X-Movement and X-Probability name what it
        shows, the probability being the one /api/predict gives; each map is scaled to its
        own maximum. Statuses as /api/predict; an unknown movement is 422; 501 where PyTorch
        (the torch extra) is not installed."""
        if movement is not None and movement not in summary["labels"]:
            return _problem(422, f"unknown movement {movement!r}; this model knows {', '.join(summary['labels'])}")
        try:
            require_torch("a heat-map")
        except ArtstyleError as exc:  # the light install: say what to install, not 500
            return _problem(501, str(exc))
        answer = await answer_uploads([file], lambda paths, names: explain_file(paths, names, movement),
                                      lambda name, reason: {"path": name, "error": reason})
        if isinstance(answer, Response):
            return answer
        (result,) = answer
        return Response(result["png"], media_type="image/png", headers={
            "X-Movement": result["movement"], "X-Probability": f"{result['probability']:.6f}"})

    return app


def serve(
    classifier: StyleClassifier,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    extend: Callable[[FastAPI], None] | None = None,
    **limits,
) -> None:
    """Run the app with uvicorn until interrupted; `extend` adds routes (the review page)."""
    import uvicorn

    app = create_app(classifier, **limits)
    if extend is not None:
        extend(app)
    uvicorn.run(app, host=host, port=port, log_level="info")

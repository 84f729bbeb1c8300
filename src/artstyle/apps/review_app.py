"""The review page's routes (`artstyle review`, `artstyle serve --review`): a grid of the
collection's images with the model's answers, filters, and decisions saved to labels.csv.

The heat-map and the closest paintings of an image come from the serve app's own
/api/explain and /api/similar: the page posts the image to them as an upload would.
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel

from ..data.families import MOVEMENT_FAMILIES
from ..data.images import load_image
from ..data.manifest import NOT_A_PAINTING
from ..errors import ImageLoadError
from ..files import atomic_write_bytes
from .review_store import ReviewSession, file_key

THUMBNAIL_SIDE = 240  # grid thumbnails: cached on disk, so paging through 10,000 images stays quick
LARGE_SIDE = 1024  # the picture opened large


class DecisionIn(BaseModel):
    """Accept the model's answer (`movement` left out) or file the image under `movement`
    (one of the model's, or "not a painting")."""

    index: int
    movement: str | None = None


def _jpeg(path: Path, side: int) -> bytes:
    img = load_image(path)
    img.thumbnail((side, side))
    out = io.BytesIO()
    img.save(out, "JPEG", quality=85)
    return out.getvalue()


def add_review_routes(app: FastAPI, session: ReviewSession, cache: Path, model_name: str) -> None:
    """The page at /review and its API under /api/review."""
    web = resources.files("artstyle.apps") / "web"
    thumbs = cache / "thumbnails"

    def item_or_404(index: int):
        if not 0 <= index < len(session.items):
            return None
        return session.items[index]

    @app.get("/review", response_class=HTMLResponse, include_in_schema=False)
    def review_page() -> str:
        return (web / "review.html").read_text(encoding="utf-8")

    @app.get("/api/review/meta")
    def meta() -> dict:
        """The model's movements (and "not a painting"), the families present, where labels go."""
        present = set(session.movements)
        families = [name for name, movements in MOVEMENT_FAMILIES.items() if present & set(movements)]
        return {"model": model_name, "movements": session.movements, "not_a_painting": NOT_A_PAINTING,
                "families": families, "labels_file": str(session.labels.file), "images": len(session.items)}

    @app.get("/api/review/items")
    def items(movement: str = "", family: str = "", flag: str = "", status: str = "", sort: str = "confidence",
              offset: int = 0, limit: int = 60) -> dict:
        """A page of images with the model's answers and the decisions, filtered and sorted
        (confidence: least sure first; confidence-desc; name)."""
        return session.query(movement=movement, family=family, flag=flag, status=status, sort=sort,
                             offset=max(offset, 0), limit=min(max(limit, 1), 200))

    @app.get("/api/review/thumbnail/{index}", response_class=Response)
    def thumbnail(index: int):
        item = item_or_404(index)
        if item is None:
            return JSONResponse({"detail": f"no image {index}"}, status_code=404)
        key = hashlib.sha256(file_key(item.file).encode()).hexdigest()[:24]
        cached = thumbs / f"{key}.jpg"
        if not cached.is_file():
            try:
                atomic_write_bytes(cached, _jpeg(item.file, THUMBNAIL_SIDE))
            except ImageLoadError as exc:
                return JSONResponse({"detail": str(exc)}, status_code=422)
        return Response(cached.read_bytes(), media_type="image/jpeg", headers={"Cache-Control": "max-age=3600"})

    @app.get("/api/review/image/{index}", response_class=Response)
    def image(index: int):
        item = item_or_404(index)
        if item is None:
            return JSONResponse({"detail": f"no image {index}"}, status_code=404)
        try:
            return Response(_jpeg(item.file, LARGE_SIDE), media_type="image/jpeg")
        except ImageLoadError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.post("/api/review/decisions")
    def decide(decision: DecisionIn):
        """Save one decision at once (labels.csv is rewritten atomically)."""
        if item_or_404(decision.index) is None:
            return JSONResponse({"detail": f"no image {decision.index}"}, status_code=404)
        try:
            return session.decide(decision.index, decision.movement)
        except ValueError as exc:
            return JSONResponse({"detail": str(exc)}, status_code=422)

    @app.delete("/api/review/decisions/{index}")
    def undo(index: int):
        """Take a decision back."""
        item = item_or_404(index)
        if item is None:
            return JSONResponse({"detail": f"no image {index}"}, status_code=404)
        session.labels.undo(item)
        return {"index": index, "decision": None}

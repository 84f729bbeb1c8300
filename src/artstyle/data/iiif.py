"""IIIF documents: which image to ask an Image API service for, and the canvases of a
Presentation manifest (versions 2 and 3).

Museums and libraries publish collections this way (the Met, Rijksmuseum, the Art
Institute of Chicago, the National Gallery of Art, Europeana). A service is asked for the
whole picture fitted in `REQUEST_SIDE` pixels (`full/!1024,1024/0/default.jpg`), within
the limits its info.json states; a level-0 service (static files) only serves the sizes it
lists, so the smallest listed size that reaches REQUEST_SIDE is taken (else the largest).
"""

from __future__ import annotations

from dataclasses import dataclass

REQUEST_SIDE = 1024  # the recipes read full-size paintings from a 1024-px view at most


@dataclass(frozen=True)
class Canvas:
    """One picture of a manifest: its label, and its image service or its image's URL."""

    label: str
    service: str | None
    image: str | None


def _context(doc: dict) -> str:
    context = doc.get("@context", "")
    return " ".join(context) if isinstance(context, list) else str(context)


def _id(doc: dict) -> str:
    return str(doc.get("id") or doc.get("@id") or "").rstrip("/")


def kind(doc: dict) -> str | None:
    """'image-service', 'manifest', 'collection' or None for a JSON document."""
    kinds = {str(doc.get("type", "")), str(doc.get("@type", ""))}
    if kinds & {"Manifest", "sc:Manifest"}:
        return "manifest"
    if kinds & {"Collection", "sc:Collection"}:
        return "collection"
    if "iiif.io/api/image" in _context(doc) or doc.get("protocol") == "http://iiif.io/api/image":
        return "image-service"
    return None


def _level0(info: dict) -> bool:
    profile = info.get("profile", "")
    return "level0" in (" ".join(map(str, profile)) if isinstance(profile, list) else str(profile))


def image_request(info: dict, side: int = REQUEST_SIDE) -> str:
    """The URL of the whole image fitted in `side` pixels that this service can serve."""
    base, version3 = _id(info), "/image/3" in _context(info)
    if _level0(info):
        sizes = sorted((int(s["width"]), int(s["height"])) for s in info.get("sizes") or [] if "width" in s)
        if sizes:
            w, h = next((s for s in sizes if max(s) >= side), sizes[-1])
            return f"{base}/full/{w},{h}/0/default.jpg"
        return f"{base}/full/{'max' if version3 else 'full'}/0/default.jpg"
    width = min(side, int(info.get("maxWidth") or side))
    height = min(side, int(info.get("maxHeight") or info.get("maxWidth") or side))
    if info.get("maxArea"):
        scale = min(1.0, (int(info["maxArea"]) / (width * height)) ** 0.5)
        width, height = int(width * scale), int(height * scale)
    return f"{base}/full/!{width},{height}/0/default.jpg"


def label_text(label) -> str:
    """A v2 label (string, or list of {"@value"}) or v3 language map ({"en": [...]}) as text."""
    if isinstance(label, str):
        return label
    if isinstance(label, list):
        return "; ".join(label_text(item) for item in label)
    if isinstance(label, dict):
        if "@value" in label:
            return str(label["@value"])
        values: object = label.get("en") or label.get("none") or next(iter(label.values()), [])
        return "; ".join(map(str, values)) if isinstance(values, list) else str(values)
    return ""


def _service_id(resource: dict) -> str | None:
    services = resource.get("service") or []
    for service in services if isinstance(services, list) else [services]:
        if isinstance(service, dict) and _id(service):
            return _id(service)
    return None


def canvases(manifest: dict) -> list[Canvas]:
    """Every canvas's first image, with the canvas label (its number when it has none)."""
    found = []
    if "sequences" in manifest:  # Presentation 2
        raw = [c for sequence in manifest.get("sequences") or [] for c in sequence.get("canvases") or []]
        bodies = [((c.get("images") or [{}])[0].get("resource") or {}) for c in raw]
    else:  # Presentation 3: canvas -> AnnotationPage -> painting Annotation -> body
        raw = manifest.get("items") or []
        bodies = []
        for c in raw:
            annotation = ((c.get("items") or [{}])[0].get("items") or [{}])[0]
            body = annotation.get("body") or {}
            bodies.append(body[0] if isinstance(body, list) and body else body)
    for number, (canvas, body) in enumerate(zip(raw, bodies), 1):
        label = label_text(canvas.get("label")) or f"canvas {number}"
        found.append(Canvas(label, _service_id(body), _id(body) or None))
    return found

"""Images by URL: plain http(s) images, IIIF Image API services and IIIF Presentation
manifests (`data.iiif`), fetched into a cache so `predict` and `review` read local files.

Limits, because a URL is someone else's server: http(s) only; a timeout per request; a
size cap checked against Content-Length before the body is read and again while it is read
(nothing is decoded until it fits); retries with exponential backoff on connection errors
and 5xx answers; at most `concurrency` requests at once; answers cached by URL and
revalidated with their ETag (If-None-Match), so a second run downloads nothing new.
"""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..errors import ArtstyleError
from ..files import atomic_write_bytes
from . import iiif

CHUNK = 1 << 16


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:.3g} MB"


def is_url(text: str) -> bool:
    return text.startswith(("http://", "https://"))


class RemoteError(ArtstyleError):
    """A URL that could not be fetched (the message names it and says why)."""


@dataclass(frozen=True)
class Limits:
    timeout: float = 20.0  # seconds per request (connect and each read)
    max_bytes: int = 32_000_000  # a 1024-px JPEG is well under 1 MB; a full-size TIFF may not be
    retries: int = 3  # further tries after a connection error or a 5xx answer
    backoff: float = 0.5  # seconds before the first retry, doubled each time
    concurrency: int = 4  # requests at once


@dataclass(frozen=True)
class Fetched:
    file: Path
    content_type: str


class Fetcher:
    """Fetches URLs into `cache` (body and its ETag), within `limits`."""

    def __init__(self, cache: Path, limits: Limits = Limits()):
        self.cache, self.limits = cache, limits

    def _paths(self, url: str) -> tuple[Path, Path]:
        key = hashlib.sha256(url.encode()).hexdigest()[:32]
        return self.cache / f"{key}.body", self.cache / f"{key}.json"

    def fetch(self, url: str) -> Fetched:
        """The URL's body as a cached file; RemoteError when it cannot be had within the limits."""
        if not is_url(url):
            raise RemoteError(f"{url}: only http(s) URLs are fetched")
        body, meta_file = self._paths(url)
        meta = json.loads(meta_file.read_text()) if meta_file.is_file() and body.is_file() else None
        headers = {"User-Agent": "artstyle", "Accept": "image/*, application/ld+json, application/json"}
        if meta and meta.get("etag"):
            headers["If-None-Match"] = meta["etag"]
        delay = self.limits.backoff
        for attempt in range(self.limits.retries + 1):
            try:
                return self._get(url, headers, body, meta_file, meta)
            except urllib.error.HTTPError as exc:
                if exc.code < 500 or attempt == self.limits.retries:
                    raise RemoteError(f"{url}: the server answered {exc.code} {exc.reason}") from None
            except (urllib.error.URLError, TimeoutError, ConnectionError) as exc:
                reason = getattr(exc, "reason", exc)
                if attempt == self.limits.retries:
                    raise RemoteError(f"{url}: {reason} (after {attempt + 1} tries)") from None
            time.sleep(delay)
            delay *= 2
        raise AssertionError("unreachable")

    def _get(self, url: str, headers: dict, body: Path, meta_file: Path, meta: dict | None) -> Fetched:
        request = urllib.request.Request(url, headers=headers)
        try:
            response = urllib.request.urlopen(request, timeout=self.limits.timeout)  # noqa: S310 (http(s) checked)
        except urllib.error.HTTPError as exc:
            if exc.code == 304 and meta is not None:
                return Fetched(body, meta.get("content_type", ""))
            raise
        with response:
            cap = self.limits.max_bytes
            length = response.headers.get("Content-Length")
            if length and length.isdigit() and int(length) > cap:
                raise RemoteError(f"{url}: {_mb(int(length))} is over the {_mb(cap)} limit: not read")
            data = bytearray()
            while chunk := response.read(CHUNK):
                data += chunk
                if len(data) > cap:
                    raise RemoteError(f"{url}: more than the {_mb(cap)} limit: not read further")
            content_type = response.headers.get("Content-Type", "").split(";")[0].strip()
            atomic_write_bytes(body, bytes(data))
            atomic_write_bytes(meta_file, json.dumps({"url": url, "etag": response.headers.get("ETag"),
                                                      "content_type": content_type}).encode())
        return Fetched(body, content_type)

    def json(self, url: str) -> dict:
        doc = _document(self.fetch(url), url)
        if doc is None:
            raise RemoteError(f"{url}: not JSON")
        return doc


@dataclass(frozen=True)
class RemoteImage:
    """One picture a URL stood for: its name (a canvas label, or the URL), the local file
    holding it, or why it could not be had."""

    name: str
    file: Path | None
    error: str | None = None


def _image(fetcher: Fetcher, name: str, url: str) -> RemoteImage:
    try:
        return RemoteImage(name, fetcher.fetch(url).file)
    except RemoteError as exc:
        return RemoteImage(name, None, str(exc))


def _service_image(fetcher: Fetcher, name: str, service: str) -> RemoteImage:
    try:
        info = fetcher.json(f"{service}/info.json")
    except RemoteError as exc:
        return RemoteImage(name, None, str(exc))
    return _image(fetcher, name, iiif.image_request(info))


def _document(fetched: Fetched, url: str) -> dict | None:
    """The JSON object a fetched body holds, None when it is not JSON (an image)."""
    if "json" not in fetched.content_type:
        with fetched.file.open("rb") as f:
            if f.read(1) not in (b"{", b"["):
                return None
    try:
        doc = json.loads(fetched.file.read_bytes())
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        raise RemoteError(f"{url}: not a IIIF document (a JSON object was expected)")
    return doc


def _plan(url: str, fetcher: Fetcher) -> list[tuple]:
    """(fetch function or None, name, URL or file or error) for each picture `url` stands for."""
    try:
        fetched = fetcher.fetch(url)
        doc = _document(fetched, url)
    except RemoteError as exc:
        return [(None, url, str(exc))]
    if doc is None:
        return [(None, url, fetched.file)]
    found = iiif.kind(doc)
    if found == "image-service":
        return [(_image, url, iiif.image_request(doc))]
    if found != "manifest":
        what = "a IIIF collection (give its manifests)" if found == "collection" else "JSON that is not IIIF"
        return [(None, url, f"{url}: {what}")]
    jobs: list[tuple] = []
    seen: dict[str, int] = {}
    for canvas in iiif.canvases(doc):
        seen[canvas.label] = seen.get(canvas.label, 0) + 1
        name = canvas.label if seen[canvas.label] == 1 else f"{canvas.label} ({seen[canvas.label]})"
        if canvas.service:
            jobs.append((_service_image, name, canvas.service))
        elif canvas.image:
            jobs.append((_image, name, canvas.image))
        else:
            jobs.append((None, name, f"{url}: canvas {name!r} has no image"))
    return jobs or [(None, url, f"{url}: a manifest without canvases")]


def expand(urls: list[str], fetcher: Fetcher) -> list[list[RemoteImage]]:
    """Each URL's pictures, in order: an image is itself; an info.json its image at the
    size the recipe needs; a manifest every canvas, named by its label. Pictures are fetched
    `concurrency` at a time."""
    plans = [_plan(url, fetcher) for url in urls]
    with ThreadPoolExecutor(max_workers=fetcher.limits.concurrency) as pool:
        futures = [[pool.submit(job, fetcher, name, target) if job else None for job, name, target in plan]
                   for plan in plans]
    return [[future.result() if future is not None else
             RemoteImage(name, target) if isinstance(target, Path) else RemoteImage(name, None, target)
             for future, (_, name, target) in zip(row, plan)] for row, plan in zip(futures, plans)]

"""Images by URL and IIIF, against a local server the tests start: static level-0 files, a
small dynamic Image API, Presentation 2 and 3 manifests, and slow, failing, flaky and
oversized answers."""

from __future__ import annotations

import io
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from PIL import Image
from synth import paint
from test_cli import run

from artstyle.apps.output import fetch_inputs
from artstyle.apps.review_store import review_items
from artstyle.apps.serve import create_app
from artstyle.data import iiif
from artstyle.data.remote import Fetcher, Limits, RemoteError, expand

N = 12
STYLES = ["01_StripedArt", "02_dot_painting", "03-Brush Strokes", "04 Colour Blocks", "05_Rings", "06_Scribbles"]


class _Server(BaseHTTPRequestHandler):
    files: dict[str, Path] = {}
    docs: dict[str, dict] = {}
    hits: dict[str, int] = {}
    revalidated: list[str] = []
    in_flight = [0, 0]  # now, most at once
    lock = threading.Lock()

    def log_message(self, *args):  # quiet
        pass

    def _send(self, status: int, body: bytes = b"", kind: str = "image/jpeg", headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):  # noqa: N802 (http.server's name)
        with self.lock:
            self.in_flight[0] += 1
            self.in_flight[1] = max(self.in_flight)
        try:
            self._answer()
        finally:
            with self.lock:
                self.in_flight[0] -= 1

    def _answer(self):
        path = self.path
        self.hits[path] = self.hits.get(path, 0) + 1
        if path in self.docs:
            return self._send(200, json.dumps(self.docs[path]).encode(), "application/ld+json")
        if path.startswith("/static/") and path.endswith("/0/default.jpg"):  # level 0: the listed size only
            time.sleep(0.05)  # long enough for requests to overlap
            name = path.split("/")[2]
            return self._send(200, self.files[name].read_bytes())
        dynamic = re.fullmatch(r"/dyn/(\w+)/full/!(\d+),(\d+)/0/default.jpg", path)
        if dynamic:
            source = self.files[dynamic[1]]
            with Image.open(source) as img:
                if img.width <= int(dynamic[2]) and img.height <= int(dynamic[3]):
                    return self._send(200, source.read_bytes())  # fits: the file itself, as a real server would
                img.thumbnail((int(dynamic[2]), int(dynamic[3])))
                out = io.BytesIO()
                img.save(out, "JPEG")
                return self._send(200, out.getvalue())
        if path == "/direct.jpg":
            return self._send(200, self.files["img0"].read_bytes())
        if path == "/slow.jpg":
            time.sleep(1.5)
            return self._send(200, self.files["img0"].read_bytes())
        if path == "/flaky.jpg":
            return self._send(503) if self.hits[path] <= 2 else self._send(200, self.files["img0"].read_bytes())
        if path == "/broken.jpg":
            return self._send(500)
        if path == "/huge.jpg":  # says 50 MB up front
            self.send_response(200)
            self.send_header("Content-Length", str(50_000_000))
            self.end_headers()
            try:
                self.wfile.write(b"\0" * 1000)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if path == "/endless.jpg":  # no length given: the cap stops the reading
            self.send_response(200)
            self.end_headers()
            try:
                for _ in range(200):
                    self.wfile.write(b"\0" * 10_000)
            except (BrokenPipeError, ConnectionResetError):
                pass
            return
        if path == "/etag.jpg":
            if self.headers.get("If-None-Match") == '"v1"':
                self.revalidated.append(path)
                return self._send(304)
            return self._send(200, self.files["img1"].read_bytes(), headers={"ETag": '"v1"'})
        return self._send(404)


@pytest.fixture(scope="module")
def iiif_server(tmp_path_factory):
    """(base URL, the 12 files on disk) of a local IIIF server: images 0-5 as level-0 v2
    services, 6-11 as a dynamic v3 service, one v3 manifest of the 12 and one v2 manifest."""
    disk = tmp_path_factory.mktemp("disk")
    files = {}
    for i in range(N):
        files[f"img{i}"] = disk / f"{i:02d}.jpg"
        paint(STYLES[i % 6], artist=i % 3, seed=400 + i, size=(360, 280)).save(files[f"img{i}"], quality=92)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Server)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    docs = {}
    for i in range(N):
        if i < 6:
            docs[f"/static/img{i}/info.json"] = {
                "@context": "http://iiif.io/api/image/2/context.json", "@id": f"{base}/static/img{i}",
                "protocol": "http://iiif.io/api/image", "profile": ["http://iiif.io/api/image/2/level0.json"],
                "width": 360, "height": 280, "sizes": [{"width": 180, "height": 140}, {"width": 360, "height": 280}]}
        else:
            docs[f"/dyn/img{i}/info.json"] = {
                "@context": "http://iiif.io/api/image/3/context.json", "id": f"{base}/dyn/img{i}", "type": "ImageService3",
                "protocol": "http://iiif.io/api/image", "profile": "level2", "width": 360, "height": 280, "maxWidth": 4000}

    def service(i):
        return ({"@id": f"{base}/static/img{i}", "@type": "ImageService2", "profile": "level0"} if i < 6 else
                {"id": f"{base}/dyn/img{i}", "type": "ImageService3", "profile": "level2"})

    docs["/manifest3.json"] = {
        "@context": "http://iiif.io/api/presentation/3/context.json", "id": f"{base}/manifest3.json", "type": "Manifest",
        "label": {"en": ["Twelve paintings"]},
        "items": [{"id": f"{base}/canvas/{i}", "type": "Canvas", "label": {"en": [f"painting {i}"]},
                   "items": [{"type": "AnnotationPage", "items": [{"type": "Annotation", "motivation": "painting",
                              "body": {"id": f"{base}/img{i}.jpg", "type": "Image", "service": [service(i)]}}]}]}
                  for i in range(N)]}
    docs["/manifest2.json"] = {
        "@context": "http://iiif.io/api/presentation/2/context.json", "@id": f"{base}/manifest2.json",
        "@type": "sc:Manifest", "label": "Two",
        "sequences": [{"canvases": [
            {"label": "served", "images": [{"resource": {"@id": f"{base}/x.jpg", "service": service(1)}}]},
            {"label": [{"@value": "plain"}], "images": [{"resource": {"@id": f"{base}/direct.jpg"}}]}]}]}
    _Server.files, _Server.docs = files, docs
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield base, [files[f"img{i}"] for i in range(N)]
    server.shutdown()


def test_image_requests_follow_what_the_service_allows():
    level0 = {"@context": "http://iiif.io/api/image/3/context.json", "id": "https://x/iiif/a", "profile": "level0",
              "sizes": [{"width": 400, "height": 300}, {"width": 1600, "height": 1200}, {"width": 3200, "height": 2400}]}
    assert iiif.image_request(level0) == "https://x/iiif/a/full/1600,1200/0/default.jpg"
    assert iiif.image_request({**level0, "sizes": []}) == "https://x/iiif/a/full/max/0/default.jpg"
    level2 = {"@context": "http://iiif.io/api/image/2/context.json", "@id": "https://x/iiif/b/", "profile": ["level2"]}
    assert iiif.image_request(level2) == "https://x/iiif/b/full/!1024,1024/0/default.jpg"
    assert iiif.image_request({**level2, "maxWidth": 800}) == "https://x/iiif/b/full/!800,800/0/default.jpg"
    assert iiif.label_text({"nl": ["De Nachtwacht"]}) == "De Nachtwacht"


def test_a_manifest_of_twelve_canvases_answers_as_the_files_on_disk(iiif_server, capsys, monkeypatch):
    base, files = iiif_server
    code, out, _ = run(capsys, monkeypatch, "predict", f"{base}/manifest3.json", "--format", "json")
    remote = json.loads(out)
    code_disk, out_disk, _ = run(capsys, monkeypatch, "predict", *files, "--format", "json")
    disk = json.loads(out_disk)
    assert code == code_disk == 0 and [a["path"] for a in remote] == [f"painting {i}" for i in range(N)]
    for a, b in zip(remote, disk):
        assert [p["label"] for p in a["predictions"]] == [p["label"] for p in b["predictions"]]
        assert [p["probability"] for p in a["predictions"]] == pytest.approx([p["probability"] for p in b["predictions"]])
        assert a["is_painting"] == b["is_painting"]
    assert _Server.hits["/static/img0/full/360,280/0/default.jpg"] >= 1  # level 0: a listed size
    assert _Server.hits["/dyn/img6/full/!1024,1024/0/default.jpg"] >= 1  # dynamic: the recipe's 1024 px
    assert 1 < _Server.in_flight[1] <= Limits().concurrency  # images fetched side by side, never more than the cap
    reviewed = review_items([f"{base}/manifest3.json"])
    assert [item.name for item in reviewed] == [f"painting {i}" for i in range(N)]
    two = expand([f"{base}/manifest2.json"], Fetcher(Path(files[0]).parent / "cache2"))[0]
    assert [(image.name, image.error) for image in two] == [("served", None), ("plain", None)]


def test_slow_failing_flaky_and_oversized_answers_are_reported_not_decoded(iiif_server, tmp_path):
    base, files = iiif_server
    fetcher = Fetcher(tmp_path / "cache", Limits(timeout=0.5, retries=2, backoff=0.01, max_bytes=100_000))
    names = ["slow.jpg", "broken.jpg", "huge.jpg", "endless.jpg", "flaky.jpg", "missing.jpg"]
    results = [row[0] for row in expand([f"{base}/{name}" for name in names], fetcher)]
    errors = {name: r.error for name, r in zip(names, results)}
    assert "timed out" in errors["slow.jpg"] and "(after 3 tries)" in errors["slow.jpg"]
    assert errors["broken.jpg"].endswith("the server answered 500 Internal Server Error")
    assert "50 MB is over the 0.1 MB limit: not read" in errors["huge.jpg"]
    assert "more than the 0.1 MB limit" in errors["endless.jpg"]
    assert errors["flaky.jpg"] is None and _Server.hits["/flaky.jpg"] == 3  # two 503s, then the image
    assert "answered 404" in errors["missing.jpg"]
    with pytest.raises(RemoteError, match="only http"):
        fetcher.fetch("file:///etc/passwd")
    default_cap = Fetcher(tmp_path / "cache3")
    with pytest.raises(RemoteError, match="50 MB is over the 32 MB limit"):
        default_cap.fetch(f"{base}/huge.jpg")


def test_answers_are_cached_by_url_and_revalidated_by_etag(iiif_server, tmp_path):
    base, _ = iiif_server
    first = fetch_inputs([f"{base}/etag.jpg"], cache=tmp_path / "urls")[0]
    again = fetch_inputs([f"{base}/etag.jpg"], cache=tmp_path / "urls")[0]
    assert first.file == again.file and first.file.read_bytes()[:2] == b"\xff\xd8"
    assert _Server.revalidated == ["/etag.jpg"]  # the second run asked with If-None-Match and got 304


def test_serve_fetches_urls_only_when_allowed(iiif_server, trained_model):
    base, _ = iiif_server
    clf, _ = trained_model
    closed = TestClient(create_app(clf)).post("/api/predict-urls", json={"urls": [f"{base}/direct.jpg"]})
    assert closed.status_code == 403 and "--allow-urls" in closed.json()["detail"]
    with TestClient(create_app(clf, allow_urls=True)) as client:
        answer = client.post("/api/predict-urls", json={"urls": [f"{base}/direct.jpg", f"{base}/broken.jpg"]})
        assert answer.status_code == 200
        first, second = answer.json()
        assert first["predictions"] and second["error"].endswith("500 Internal Server Error")
        assert client.post("/api/predict-urls", json={"urls": ["file:///etc/passwd"]}).status_code == 422

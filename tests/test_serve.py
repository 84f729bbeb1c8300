"""The REST API of `artstyle serve`: answers, limits and the bounded queue."""

from __future__ import annotations

import asyncio
import io
import re
import struct
import time
import zlib

import numpy as np
import pytest
from PIL import Image
from synth import STYLES, paint, photo_like

httpx = pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

from artstyle import create_app  # noqa: E402


def jpeg(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def client(trained_model):
    clf, _ = trained_model
    with TestClient(create_app(clf, model_name="synthetic", max_upload_mb=0.5, max_files=4)) as client:
        yield client


@pytest.fixture(scope="module")
def painting_bytes() -> dict[str, bytes]:
    """One new picture per trained movement (artist 9: never seen in training)."""
    return {style: jpeg(paint(style, artist=9, seed=900 + i)) for i, style in enumerate(list(STYLES)[:4])}


def test_predict_answers_like_the_command_line(client, trained_model, painting_bytes, tmp_path):
    clf, _ = trained_model
    style, data = next(iter(painting_bytes.items()))
    response = client.post("/api/predict", files=[("files", ("my painting.jpg", data, "image/jpeg"))])
    assert response.status_code == 200
    (answer,) = response.json()
    path = tmp_path / "same.jpg"
    path.write_bytes(data)
    expected = clf.predict_top_k([path], k=3)[0].to_dict()
    assert set(answer) == set(expected)  # the JSON shape of `artstyle predict --format json`
    assert answer["path"] == "my painting.jpg"
    assert [p["label"] for p in answer["predictions"]] == [p["label"] for p in expected["predictions"]]
    for got, want in zip(answer["predictions"], expected["predictions"]):
        assert got["probability"] == pytest.approx(want["probability"], abs=1e-6)
    assert (answer["uncertain"], answer["is_painting"], answer["error"]) == (
        expected["uncertain"], expected["is_painting"], None)


def test_several_files_keep_their_order_and_top_k(client, trained_model, painting_bytes):
    clf, _ = trained_model
    files = [("files", (f"{style}.jpg", data, "image/jpeg")) for style, data in painting_bytes.items()]
    response = client.post("/api/predict", files=files, data={"top_k": "2"})
    assert response.status_code == 200
    answers = response.json()
    assert [a["path"] for a in answers] == [f"{style}.jpg" for style in painting_bytes]
    assert all(len(a["predictions"]) == 2 for a in answers)
    # the model learnt the synthetic movements: new artists' pictures are mostly named right
    right = sum(a["predictions"][0]["label"] == clf.predict([paint(s, 9, 900 + i)])[0]
                for i, (s, a) in enumerate(zip(painting_bytes, answers)))
    assert right >= 3
    labels = {str(c) for c in clf.classes_}
    assert all(p["label"] in labels for a in answers for p in a["predictions"])
    huge_k = client.post("/api/predict", files=files[:1], data={"top_k": "99"}).json()[0]
    assert len(huge_k["predictions"]) == len(labels)  # capped at the number of movements


def test_unreadable_files(client, painting_bytes):
    good = ("files", ("good.jpg", next(iter(painting_bytes.values())), "image/jpeg"))
    text = ("files", ("notes.jpg", b"these are my notes, not a painting", "image/jpeg"))
    truncated = ("files", ("cut.jpg", next(iter(painting_bytes.values()))[:1500], "image/jpeg"))

    mixed = client.post("/api/predict", files=[good, text])
    assert mixed.status_code == 200  # one bad file does not cost the others their answer
    assert mixed.json()[0]["error"] is None and "not a readable image" in mixed.json()[1]["error"]

    only_text = client.post("/api/predict", files=[text])
    assert only_text.status_code == 415
    assert only_text.json()["detail"].startswith("notes.jpg: not a readable image")

    broken = client.post("/api/predict", files=[truncated])
    assert broken.status_code == 422
    assert "cut.jpg" in broken.json()["detail"] and "truncated" in broken.json()["detail"]


def test_limits(client, painting_bytes):
    big = Image.effect_noise((600, 600), 80).convert("RGB")  # about 1 MB as PNG
    oversized = client.post("/api/predict", files=[("files", ("huge scan.png", _png(big), "image/png"))])
    assert oversized.status_code == 413
    assert re.match(r"huge scan\.png: \d+\.\d MB is over the 0\.5 MB limit per file", oversized.json()["detail"])

    data = next(iter(painting_bytes.values()))
    too_many = client.post("/api/predict", files=[("files", (f"{i}.jpg", data, "image/jpeg")) for i in range(5)])
    assert too_many.status_code == 413 and "limit is 4" in too_many.json()["detail"]

    # a body larger than every allowed file together is refused before it is read
    flood = client.post("/api/predict", content=b"x" * 4_000_000,
                        headers={"content-type": "multipart/form-data; boundary=xyz"})
    assert flood.status_code == 413 and "request body" in flood.json()["detail"]

    empty = client.post("/api/predict")
    assert empty.status_code == 422 and empty.json()["detail"].startswith("no files sent")
    zero_k = client.post("/api/predict", files=[("files", ("a.jpg", data, "image/jpeg"))], data={"top_k": "0"})
    assert zero_k.status_code == 422 and re.match(r"top_k: .*greater than or equal to 1", zero_k.json()["detail"])


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def test_model_health_page_and_schema(client, trained_model):
    clf, _ = trained_model
    assert client.get("/api/health").json() == {"status": "ok", "model": "synthetic"}
    model = client.get("/api/model").json()
    assert model["labels"] == [str(c) for c in clf.classes_]
    assert model["uncertain_below"] == pytest.approx(clf.abstention_.uncertain_below)
    assert model["backbones"][0]["name"] == "efficientnet_lite0" and model["metrics"]["n_images"] > 0
    assert model["precision"] == "fp32"

    page = client.get("/")
    assert page.status_code == 200 and 'type="file"' in page.text
    for asset in re.findall(r'(?:src|href)="(static/[^"]+)"', page.text):
        served = client.get("/" + asset)
        assert served.status_code == 200
        assert not re.search(r"https?://", served.text), f"{asset} reaches outside the server"
    assert not re.search(r"https?://", page.text)  # works offline: no CDN

    schema = client.get("/openapi.json").json()
    operation = schema["paths"]["/api/predict"]["post"]
    assert {"413", "415", "422", "503"} <= set(operation["responses"])
    body = operation["requestBody"]["content"]
    assert "multipart/form-data" in body


def test_a_burst_queues_within_bounds_and_inference_leaves_the_loop_free(trained_model, painting_bytes):
    """Slow inference (monkeypatched per instance): with room for 2 waiting requests, a
    burst of 5 gets 2 answers and 3 prompt 503s, and /api/health answers meanwhile."""
    clf, _ = trained_model
    original = clf.predict_top_k

    def slow(images, k=3):
        time.sleep(0.6)
        return original(images, k=k)

    clf.predict_top_k = slow
    try:
        app = create_app(clf, max_pending=2)
        data = next(iter(painting_bytes.values()))

        async def burst():
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as ac:
                posts = [ac.post("/api/predict", files=[("files", ("a.jpg", data, "image/jpeg"))]) for _ in range(5)]
                tasks = [asyncio.ensure_future(p) for p in posts]
                await asyncio.sleep(0.2)
                start = time.perf_counter()
                health = await ac.get("/api/health")
                health_s = time.perf_counter() - start
                return await asyncio.gather(*tasks), health, health_s

        responses, health, health_s = asyncio.run(burst())
    finally:
        del clf.predict_top_k
    codes = sorted(r.status_code for r in responses)
    assert codes == [200, 200, 503, 503, 503]
    assert all(r.headers.get("retry-after") == "1" for r in responses if r.status_code == 503)
    assert health.status_code == 200 and health_s < 0.3


def _rss_mb() -> float:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS")) / 1024


def _bad_uploads(good: bytes, rng) -> list[tuple[str, bytes, str]]:
    """(kind, bytes, expected failure) for every sort of bad file a server meets."""
    def png_claiming(width: int, height: int) -> bytes:
        def chunk(kind: bytes, data: bytes) -> bytes:
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
        return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")

    def jpeg_claiming(side: int) -> bytes:
        data = bytearray(good)
        start = data.find(b"\xff\xc0")  # baseline frame header: height, width
        struct.pack_into(">HH", data, start + 5, side, side)
        return bytes(data)

    out = [
        ("zero-byte", b"", "not_image"),
        ("text", b"dear diary, today I painted nothing\n" * 30, "not_image"),
        ("html", b"<!doctype html><html><body>not a painting</body></html>", "not_image"),
        ("bomb png 30000", png_claiming(30000, 30000), "too_large"),
        ("bomb png 60000x5000", png_claiming(60000, 5000), "too_large"),
        ("huge-dimension jpeg", jpeg_claiming(60000), "too_large"),
        ("zero-size png", png_claiming(0, 0), "any"),
        ("polyglot png+html", b"\x89PNG\r\n\x1a\n<html><script>alert(1)</script></html>", "any"),
        ("polyglot jpeg+zip", good[:200] + b"PK\x03\x04" + bytes(rng.integers(0, 256, 300, dtype=np.uint8)), "any"),
    ]
    for n in range(40):  # truncated at every depth and bytes flipped at random
        cut = good[: int(rng.integers(2, len(good) - 1))]
        out.append((f"truncated {n}", cut, "any"))
        flipped = bytearray(good)
        for i in rng.integers(0, len(good), int(rng.integers(1, 40))):
            flipped[i] = int(rng.integers(0, 256))
        out.append((f"flipped {n}", bytes(flipped), "any"))
    for n in range(20):
        out.append((f"noise {n}", bytes(rng.integers(0, 256, int(rng.integers(1, 5000)), dtype=np.uint8)), "any"))
    return out


def test_fuzzed_uploads_never_give_a_server_error_and_good_files_are_still_answered(client, painting_bytes):
    rng = np.random.default_rng(0)
    good = list(painting_bytes.values())
    bad = _bad_uploads(good[0], rng)
    statuses = {"not_image": 415, "too_large": 413}
    client.post("/api/predict", files=[("files", ("warm.jpg", good[0], "image/jpeg"))])
    rss_before = _rss_mb()
    n_uploads = 0
    for round_ in range(3):
        for i, (kind, data, expected) in enumerate(bad):
            single = client.post("/api/predict", files=[("files", (f"{kind}.jpg", data, "image/jpeg"))])
            n_uploads += 1
            assert single.status_code < 500, (kind, single.text)
            if single.status_code != 200:  # some flipped bytes still decode: then it is answered
                body = single.json()
                assert isinstance(body["detail"], str) and "\n" not in body["detail"], kind
                assert body["detail"].startswith(f"{kind}.jpg: "), body["detail"]
                if expected != "any":
                    assert single.status_code == statuses[expected], (kind, single.status_code, body["detail"])
            if i % 4 == round_:  # mixed with good files: the good ones keep their answers
                files = [("files", ("good.jpg", good[i % len(good)], "image/jpeg")),
                         ("files", (f"{kind}.png", data, "image/png"))]
                mixed = client.post("/api/predict", files=files)
                n_uploads += 2
                assert mixed.status_code == 200, (kind, mixed.text)
                first, second = mixed.json()
                assert first["error"] is None and first["predictions"], kind
                if expected != "any":
                    assert second["error"] and second["predictions"] == []
    assert n_uploads >= 300
    assert _rss_mb() - rss_before < 60  # memory stays flat: nothing is kept per request


def test_a_photo_is_answered_as_not_a_painting_with_its_kind(client):
    response = client.post("/api/predict", files=[("files", ("holiday.jpg", jpeg(photo_like(3)), "image/jpeg"))])
    assert response.status_code == 200
    (answer,) = response.json()
    assert answer["is_painting"] is False and answer["not_painting_kind"] == "photo"


def test_without_torch_explain_answers_501_saying_what_to_install(client, painting_bytes, monkeypatch):
    from artstyle import errors

    monkeypatch.setattr(errors, "_installed", lambda name: name != "torch")
    data = next(iter(painting_bytes.values()))
    answer = client.post("/api/explain", files={"file": ("one.jpg", data, "image/jpeg")})
    assert answer.status_code == 501
    assert "pip install 'artstyle[torch]'" in answer.json()["detail"]
    assert client.post("/api/predict", files=[("files", ("one.jpg", data, "image/jpeg"))]).status_code == 200


@pytest.mark.torch
def test_explain_answers_with_the_overlay(client, trained_model, painting_bytes):
    clf, _ = trained_model
    style, data = next(iter(painting_bytes.items()))
    answer = client.post("/api/explain", files={"file": ("one.jpg", data, "image/jpeg")})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    overlay = Image.open(io.BytesIO(answer.content))
    source = Image.open(io.BytesIO(data))
    assert overlay.size == source.size  # small images keep their size, and always their shape
    expected = clf.predict_proba([source])[0]
    assert answer.headers["x-movement"] == clf.classes_[expected.argmax()]
    assert float(answer.headers["x-probability"]) == pytest.approx(expected.max(), abs=1e-4)
    chosen = client.post("/api/explain", files={"file": ("one.jpg", data, "image/jpeg")},
                         data={"movement": str(clf.classes_[0])})
    assert chosen.status_code == 200 and chosen.headers["x-movement"] == clf.classes_[0]

    assert client.post("/api/explain", files={"file": ("notes.jpg", b"my notes", "image/jpeg")}).status_code == 415
    broken = client.post("/api/explain", files={"file": ("cut.jpg", data[:1500], "image/jpeg")})
    assert broken.status_code == 422 and "truncated" in broken.json()["detail"]
    unknown = client.post("/api/explain", files={"file": ("one.jpg", data, "image/jpeg")}, data={"movement": "cubism"})
    assert unknown.status_code == 422 and "unknown movement 'cubism'" in unknown.json()["detail"]
    assert client.post("/api/explain").status_code == 422
    big = _png(Image.effect_noise((600, 600), 80).convert("RGB"))  # over the 0.5 MB limit
    assert client.post("/api/explain", files={"file": ("huge.png", big, "image/png")}).status_code == 413


def test_similar_answers_like_the_classifier(client, trained_model, painting_bytes):
    clf, _ = trained_model
    images = list(painting_bytes.values())[:2]
    answer = client.post("/api/similar", files=[("files", (f"{i}.jpg", b, "image/jpeg")) for i, b in enumerate(images)],
                         data={"k": 3})
    assert answer.status_code == 200
    expected = clf.similar([Image.open(io.BytesIO(b)) for b in images], k=3)
    for got, want in zip(answer.json(), expected):
        assert [n["file"] for n in got["neighbours"]] == [n.file for n in want.neighbours]
        assert [n["similarity"] for n in got["neighbours"]] == pytest.approx([n.similarity for n in want.neighbours], abs=1e-5)
        assert [n["thumbnail"] for n in got["neighbours"]] == [f"api/thumbnails/{n.index}" for n in want.neighbours]
    assert client.get("/api/thumbnails/0").headers["content-type"] == "image/webp"  # kept by default

    text = ("files", ("notes.jpg", b"my notes", "image/jpeg"))
    mixed = client.post("/api/similar", files=[("files", ("good.jpg", images[0], "image/jpeg")), text])
    assert mixed.status_code == 200 and mixed.json()[1]["error"].startswith("not a readable image")
    assert client.post("/api/similar", files=[text]).status_code == 415
    assert client.post("/api/similar", files=[("files", ("a.jpg", images[0], "image/jpeg"))], data={"k": 0}).status_code == 422


def test_thumbnails_are_served_and_a_model_without_them_says_so(trained_model, painting_bytes, paintings):
    from artstyle import StyleClassifier

    clf, folder = trained_model
    upload = [("files", ("a.jpg", next(iter(painting_bytes.values())), "image/jpeg"))]
    with TestClient(create_app(clf)) as client:
        first = client.post("/api/similar", files=upload).json()[0]["neighbours"][0]
        served = client.get("/" + first["thumbnail"])
        assert served.status_code == 200 and served.headers["content-type"] == "image/webp"
        assert served.content == clf.similar_.thumbnails[first["index"]]
        assert client.get(f"/api/thumbnails/{len(clf.similar_)}").status_code == 404
        assert client.get("/api/model").json()["similar"] == {"paintings": len(clf.similar_), "thumbnails": True}
        training = clf.similar_.rows[3]["file"]  # an upload of a training painting is that painting
        answer = client.post("/api/similar", files=[("files", ("t.jpg", (paintings / training).read_bytes()))]).json()[0]
        assert answer["in_training"]["file"] == training and training not in [n["file"] for n in answer["neighbours"]]
    bare = StyleClassifier.load(folder, cache_dir=False)
    bare.similar_.thumbnails = None
    with TestClient(create_app(bare)) as client:
        answer = client.post("/api/similar", files=upload).json()[0]
        assert all(n["thumbnail"] is None for n in answer["neighbours"])
        assert client.get("/api/thumbnails/0").status_code == 404
        assert client.get("/api/model").json()["similar"]["thumbnails"] is False

"""The REST API of `artstyle serve`: answers, limits and the bounded queue."""

from __future__ import annotations

import asyncio
import io
import re
import time

import pytest
from PIL import Image

from synth import STYLES, paint

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
    assert mixed.json()[0]["error"] is None and "not an image" in mixed.json()[1]["error"]

    only_text = client.post("/api/predict", files=[text])
    assert only_text.status_code == 415
    assert only_text.json()["detail"].startswith("notes.jpg: not an image")

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
    assert empty.status_code == 422 and empty.json()["detail"][0]["loc"] == ["body", "files"]
    assert client.post("/api/predict", files=[("files", ("a.jpg", data, "image/jpeg"))],
                       data={"top_k": "0"}).status_code == 422


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

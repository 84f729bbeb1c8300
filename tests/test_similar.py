"""Similar paintings: every model folder indexes its training paintings, with thumbnails
unless told not to; a training painting is recognised as itself, not listed as its own
neighbour; the index travels, checked, with the model."""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from synth import FAST_CLI, STYLES, make_tree, paint
from test_cli import run

from artstyle import StyleClassifier, load_bundle, save_bundle
from artstyle.data.splits import parse_splits_csv
from artstyle.errors import BundleError
from artstyle.model.similar import THUMBNAIL_SIDE, SimilarityIndex


def test_a_training_painting_is_marked_as_itself_not_listed_as_its_own_neighbour(trained_model, paintings):
    """By its file's hash, and as a decoded picture (no file to hash) by similarity."""
    clf, _ = trained_model
    training = [row["path"] for row in parse_splits_csv(clf.splits_csv_) if row["split"] == "train"][:12]
    by_file = clf.similar([paintings / p for p in training], k=3)
    as_pictures = clf.similar([Image.open(paintings / p) for p in training[:4]], k=3)
    for path, result in zip(training, by_file + as_pictures):
        assert result.itself is not None and result.itself.file == path
        assert result.itself.similarity == pytest.approx(1.0, abs=1e-5)
        assert result.itself.movement == clf.similar_.rows[result.itself.index]["movement"]
        assert len(result.neighbours) == 3 and path not in [n.file for n in result.neighbours]
        assert result.neighbours[0].similarity < 1.0 - 1e-3
        assert result.to_dict()["in_training"]["file"] == path
    new = clf.similar([paint(list(STYLES)[0], artist=9, seed=99)], k=3)[0]
    assert new.itself is None and len(new.neighbours) == 3
    split = parse_splits_csv(clf.splits_csv_)
    indexed = {row["file"] for row in clf.similar_.rows}
    assert indexed == {r["path"] for r in split if r["split"] in ("train", "val")}  # test images stay out


def test_new_paintings_find_their_movement(trained_model):
    """Unseen artists' paintings mostly find paintings of their own movement first."""
    clf, _ = trained_model
    styles = list(STYLES)[:4]
    images = [paint(s, artist=7, seed=70 + i) for i, s in enumerate(styles) for _ in range(3)]
    from artstyle import normalize_label

    found = [r.neighbours[0].movement for r in clf.similar(images, k=1)]
    truth = [normalize_label(s) for s in styles for _ in range(3)]
    assert np.mean(np.array(found) == np.array(truth)) >= 0.75


def test_the_index_round_trips_and_a_tampered_one_is_refused(trained_model, tmp_path, paintings):
    clf, folder = trained_model
    loaded = StyleClassifier.load(folder, cache_dir=False)
    image = paint(list(STYLES)[1], artist=8, seed=1)
    a, b = clf.similar([image], k=4)[0], loaded.similar([image], k=4)[0]
    assert [n.index for n in a.neighbours] == [n.index for n in b.neighbours]
    assert [n.similarity for n in a.neighbours] == [n.similarity for n in b.neighbours]

    import shutil

    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    data = bytearray((tampered / "similar.safetensors").read_bytes())
    data[-5] ^= 0xFF
    (tampered / "similar.safetensors").write_bytes(bytes(data))
    with pytest.raises(BundleError, match=r"similar\.safetensors: altered"):
        load_bundle(tampered)
    (tampered / "similar.safetensors").unlink()
    with pytest.raises(BundleError, match=r"missing similar\.safetensors"):
        load_bundle(tampered)

    # a model saved without an index over a folder with one leaves no stale index behind
    bundle = load_bundle(folder)
    bundle.similar = None
    shutil.copytree(folder, tmp_path / "resaved")
    save_bundle(tmp_path / "resaved", bundle)
    assert not (tmp_path / "resaved" / "similar.safetensors").exists()
    assert load_bundle(tmp_path / "resaved").similar is None
    with pytest.raises(Exception, match="no similarity index"):
        StyleClassifier.load(tmp_path / "resaved").similar([image])


def _clusters(n: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(300, dim)).astype(np.float32)
    draw = lambda k: centres[rng.integers(300, size=k)] + rng.normal(size=(k, dim)).astype(np.float32)  # noqa: E731
    return draw(n), draw(200)


def test_approximate_search_recall_and_its_round_trip(trained_model, tmp_path):
    pytest.importorskip("faiss", reason="approximate search needs the ann extra (faiss-cpu)")
    clf, folder = trained_model
    dim = clf.head_.dim
    x, queries = _clusters(20_000, dim, seed=3)
    rows = [{"movement": "m", "artist": "a", "file": f"{i}.jpg", "sha256": ""} for i in range(len(x))]
    index = SimilarityIndex.build(x, rows, ann=True)
    assert index.ann is not None
    _, found = index.search(queries, 5)
    _, truth = index.search(queries, 5, exact=True)
    recall = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(found, truth)])
    assert recall >= 0.95, recall

    bundle = load_bundle(folder)
    bundle.similar = index
    save_bundle(tmp_path / "large", bundle)
    assert (tmp_path / "large" / "similar.faiss").is_file()
    again = load_bundle(tmp_path / "large").similar
    assert again.ann is not None and again.ann.ntotal == len(x)
    np.testing.assert_array_equal(again.search(queries, 5)[1], found)
    graph = bytearray((tmp_path / "large" / "similar.faiss").read_bytes())
    graph[len(graph) // 2] ^= 0xFF
    (tmp_path / "large" / "similar.faiss").write_bytes(bytes(graph))
    with pytest.raises(BundleError, match="altered"):
        load_bundle(tmp_path / "large")


def test_exact_search_is_used_below_the_approximate_threshold():
    x, _ = _clusters(500, 32, seed=4)
    index = SimilarityIndex.build(x, [{"movement": "m", "artist": "a", "file": str(i), "sha256": ""} for i in range(500)])
    assert index.ann is None and index.vectors.shape == (500, 32)


def test_cli_similar_shows_thumbnails_kept_by_default(tmp_path, capsys, monkeypatch):
    tree = make_tree(tmp_path / "data", styles=list(STYLES)[:2], artists=2, per_artist=3)
    model = tmp_path / "model"
    trained = subprocess.run([sys.executable, "-m", "artstyle", "-q", "train", str(tree), "--out", str(model),
                              *FAST_CLI, "--test-fraction", "0"], capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr
    config = json.loads((model / "config.json").read_text())
    assert config["similar"]["count"] == 12 and config["similar"]["thumbnails"] is True
    index = load_bundle(model).similar
    for thumb in index.thumbnails:
        img = Image.open(io.BytesIO(thumb))
        assert img.format == "WEBP" and max(img.size) <= THUMBNAIL_SIDE

    query = tree / "01_StripedArt" / "Painter A0" / "1.jpg"
    (tmp_path / "notes.jpg").write_text("not an image")
    args = ["similar", str(query), str(tmp_path / "notes.jpg"), "-m", str(model), "-k", "2"]
    as_json = json.loads(run(capsys, monkeypatch, *args, "--format", "json")[1])  # in-process: no start-up
    assert as_json[0]["in_training"]["file"] == "01_StripedArt/Painter A0/1.jpg"
    assert as_json[0]["in_training"]["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert "01_StripedArt/Painter A0/1.jpg" not in [n["file"] for n in as_json[0]["neighbours"]]
    assert len(as_json[0]["neighbours"]) == 2 and as_json[1]["error"].startswith("not a readable image")
    for neighbour in as_json[0]["neighbours"]:  # the pictures travel in the JSON, as data URIs
        header, data = neighbour["thumbnail"].split(",", 1)
        assert header == "data:image/webp;base64" and Image.open(io.BytesIO(base64.b64decode(data))).format == "WEBP"
    rows = list(csv.DictReader(io.StringIO(run(capsys, monkeypatch, *args, "--format", "csv")[1])))
    assert [r["rank"] for r in rows] == ["itself", "1", "2", ""] and rows[0]["movement"] == "striped art"
    table = subprocess.run([sys.executable, "-m", "artstyle", *args], capture_output=True, text=True,
                           env={**os.environ, "COLUMNS": "250"})  # the table at a known width
    assert table.returncode == 0 and "striped art" in table.stdout and "not a readable image" in table.stdout
    assert "in the training set" in table.stdout
    assert "Painter A0" in table.stdout and "100%" in table.stdout  # names as people read them, percent similar

    bare = tmp_path / "bare"
    trained = subprocess.run([sys.executable, "-m", "artstyle", "-q", "train", str(tree), "--out", str(bare),
                              *FAST_CLI, "--test-fraction", "0", "--no-thumbnails"], capture_output=True, text=True)
    assert trained.returncode == 0 and load_bundle(bare).similar.thumbnails is None

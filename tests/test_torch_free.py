"""Predicting needs no torch: a model folder that carries its network's ONNX graph (or a
warm graph cache) runs on ONNX Runtime, numpy and Pillow alone, from the first call."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from synth import STYLES, paint

from artstyle import BundleError, StyleClassifier, default_model_path

HEAVY = ("torch", "timm", "torchvision", "open_clip")

# Runs `code` (which leaves its answer in `out`) in a fresh interpreter with an empty
# user cache and prints the answer and the heavy libraries it imported, as JSON.
_RUNNER = """
import json, sys
out = None
{code}
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
print(json.dumps({{"out": out, "heavy": heavy}}))
"""


def _fresh(code: str, cache: Path) -> dict:
    env = {**os.environ, "ARTSTYLE_CACHE_DIR": str(cache)}
    result = subprocess.run([sys.executable, "-c", _RUNNER.format(code=code, heavy=HEAVY)], capture_output=True,
                            text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[str]:
    folder = tmp_path_factory.mktemp("unseen")
    paths = []
    for i, style in enumerate(STYLES):
        path = folder / f"{i}.jpg"
        paint(style, artist=9, seed=700 + i).save(path, quality=92)
        paths.append(str(path))
    return paths


def test_the_shipped_model_predicts_without_torch_from_an_empty_cache(images, tmp_path):
    code = (
        "from artstyle.apps.cli import main\n"
        f"sys.argv = ['artstyle', 'predict', *{images!r}, '--format', 'json']\n"
        "try:\n    main()\nexcept SystemExit as exit:\n    out = exit.code\n"
    )
    env = {**os.environ, "ARTSTYLE_CACHE_DIR": str(tmp_path / "cache")}
    result = subprocess.run([sys.executable, "-c", _RUNNER.format(code=code, heavy=HEAVY)], capture_output=True,
                            text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    answer = json.loads(lines[-1])
    assert answer["heavy"] == [] and answer["out"] in (None, 0)
    predictions = json.loads("\n".join(lines[:-1]))
    assert [p["path"] for p in predictions] == images
    for p in predictions:
        probabilities = [x["probability"] for x in p["predictions"]]
        assert len(probabilities) == 3 and probabilities == sorted(probabilities, reverse=True)
        assert 0 < sum(probabilities) <= 1 + 1e-6
    assert not (tmp_path / "cache" / "graphs").exists()  # nothing exported: the folder's graph ran


def test_a_model_folder_with_its_graph_predicts_the_same_without_torch(trained_model, images, tmp_path):
    clf, folder = trained_model
    config = json.loads((folder / "config.json").read_text())
    assert config["features"]["backbones"][0]["graph"]["file"] == "embedding.onnx"
    expected = clf.predict_proba(images)
    code = (
        "from artstyle import StyleClassifier\n"
        f"clf = StyleClassifier.load({str(folder)!r}, cache_dir=False, show_progress=False)\n"
        f"out = [clf.predict_proba({images!r}).tolist(), [p.predictions[0][0] for p in clf.predict_top_k({images!r})],\n"
        f"       [s.neighbours[0].movement for s in clf.similar({images!r}, k=1)]]\n"
    )
    answer = _fresh(code, tmp_path / "cache")
    assert answer["heavy"] == []
    proba, top, nearest = answer["out"]
    np.testing.assert_allclose(proba, expected, atol=1e-5)
    assert top == clf.predict(images) and len(nearest) == len(images)


def test_without_its_graph_a_model_still_predicts_and_builds_the_network_once(trained_model, images, tmp_path):
    clf, _ = trained_model
    folder = clf.save(tmp_path / "no-graph", graphs=False)
    assert not (folder / "embedding.onnx").exists()
    assert "graph" not in json.loads((folder / "config.json").read_text())["features"]["backbones"][0]
    code = (
        "from artstyle import StyleClassifier\n"
        f"out = StyleClassifier.load({str(folder)!r}, cache_dir=False, show_progress=False).predict_proba({images!r}).tolist()\n"
    )
    first = _fresh(code, tmp_path / "cache")
    assert "torch" in first["heavy"]  # an empty cache: the network is built and exported once
    again = _fresh(code, tmp_path / "cache")
    assert again["heavy"] == []  # ... and the exported graph serves every later process
    np.testing.assert_allclose(first["out"], clf.predict_proba(images), atol=1e-5)
    np.testing.assert_allclose(again["out"], first["out"], atol=1e-6)


def test_an_altered_graph_is_refused_and_a_resave_without_graphs_removes_it(trained_model, tmp_path):
    clf, _ = trained_model
    folder = clf.save(tmp_path / "model")
    graph = folder / "embedding.onnx"
    data = bytearray(graph.read_bytes())
    data[len(data) // 2] ^= 0xFF
    graph.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="embedding.onnx: altered or from another model"):
        StyleClassifier.load(folder)
    graph.unlink()
    with pytest.raises(BundleError, match="missing embedding.onnx"):
        StyleClassifier.load(folder)
    clf.save(folder)  # restored whole
    StyleClassifier.load(folder)
    clf.save(folder, graphs=False)
    assert not graph.exists() and StyleClassifier.load(folder).graphs_ is None


def test_the_shipped_model_carries_its_graph():
    loaded = StyleClassifier.load(default_model_path(), cache_dir=False, show_progress=False)
    assert loaded.graphs_ is not None and len(loaded.graphs_) == len(loaded.feature_extractors)
    assert (default_model_path() / "embedding.onnx").stat().st_size > 1_000_000

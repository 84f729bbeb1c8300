"""The light install: training with the embedded backbones (every recipe), evaluating and
predicting need no torch. Their graphs ship in the package, a model folder carries its
own, the heads are fitted in numpy; what needs torch says in one line what to install.
Each check runs in a fresh interpreter where torch, timm and open_clip cannot be imported."""

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
# user cache, where importing a heavy library fails as it does where it is not installed,
# and prints the answer and the heavy libraries it imported, as JSON.
_RUNNER = """
import importlib.abc, json, sys

class _NotInstalled(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {heavy!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
sys.meta_path.insert(0, _NotInstalled())
out = None
{code}
heavy = sorted({{m.split(".")[0] for m in sys.modules}} & set({heavy!r}))
print(json.dumps({{"out": out, "heavy": heavy}}))
"""


def _run(code: str, cache: Path) -> tuple[dict, list[str], str]:
    """`code` in the runner: (its answer, the lines it printed before it, stderr)."""
    env = {**os.environ, "ARTSTYLE_CACHE_DIR": str(cache), "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-c", _RUNNER.format(code=code, heavy=HEAVY)], capture_output=True,
                            text=True, timeout=300, env=env)
    assert result.returncode == 0, result.stderr
    *printed, last = result.stdout.strip().splitlines()
    return json.loads(last), printed, result.stderr


def _fresh(code: str, cache: Path) -> dict:
    return _run(code, cache)[0]


def _cli(*args: str, cache: Path) -> tuple[int, str, str, list[str]]:
    """`artstyle ARGS` without torch: (exit code, stdout, stderr, heavy libraries imported)."""
    code = ("from artstyle.apps.cli import main\n"
            f"sys.argv = ['artstyle', *{[str(a) for a in args]!r}]\n"
            "try:\n    main()\nexcept SystemExit as exit:\n    out = exit.code\n")
    answer, printed, errors = _run(code, cache)
    return answer["out"] or 0, "\n".join(printed), errors, answer["heavy"]


def test_training_evaluating_and_predicting_need_no_torch(paintings, images, tmp_path):
    """`train` with a recipe that cuts the shipped graph (statistics of two maps of five), then
    `evaluate` and `predict`; the same training with torch installed gives the same model."""
    model, cache = tmp_path / "model", tmp_path / "cache"
    settings = ["--features", "sized+stats", "--head", "logreg", "--size-variants", "0", "--seed", "3", "--negatives", "24"]
    code, printed, errors, heavy = _cli("train", paintings, "--out", model, *settings, cache=cache)
    assert (code, heavy) == (0, []), errors
    assert "model saved" in printed + errors
    code, printed, errors, heavy = _cli("evaluate", model, paintings, "--format", "json", cache=cache)
    assert (code, heavy) == (0, []), errors
    assert json.loads(printed)["accuracy"] >= 0.75
    code, printed, errors, heavy = _cli("predict", "--model", model, *images, "--format", "json", cache=cache)
    assert (code, heavy) == (0, []), errors
    light = StyleClassifier.load(model, cache_dir=False, show_progress=False)
    np.testing.assert_array_equal([p["predictions"][0]["label"] for p in json.loads(printed)], light.predict(images))

    with_torch = StyleClassifier(features="sized+stats", head="logreg", size_variants=None, seed=3, negatives=24,
                                 cache_dir=tmp_path / "cache-2", show_progress=False).fit(paintings)
    for name, tensor in with_torch.head_.weights().items():
        np.testing.assert_allclose(tensor, light.head_.weights()[name], atol=1e-6)
    np.testing.assert_allclose(with_torch.predict_proba(images), light.predict_proba(images), atol=1e-6)


@pytest.mark.parametrize("args", [
    ["explain", "--model", "{model}", "{image}", "--out", "{out}"],
    ["train", "{data}", "--out", "{out}", "--finetune"],
    ["train", "{data}", "--out", "{out}", "--backbone", "timm:resnet18"],
    ["export", "{model}", "--onnx", "{out}"],
    ["predict", "--model", "{model}", "{image}", "--engine", "torch"],
])
def test_what_needs_torch_says_in_one_line_what_to_install(args, trained_model, paintings, images, tmp_path):
    _, folder = trained_model
    values = {"model": folder, "image": images[0], "data": paintings, "out": tmp_path / "out"}
    code, printed, errors, heavy = _cli(*[a.format(**values) for a in args], cache=tmp_path / "cache")
    assert code != 0 and heavy == []
    (line,) = [line for line in (printed + errors).splitlines() if "pip install 'artstyle[torch]'" in line]
    assert "needs PyTorch" in line and "Traceback" not in errors
    assert not (tmp_path / "out").exists()  # refused before any work


def test_the_text_tower_and_the_torch_families_say_what_to_install(tmp_path):
    """A zero-shot model whose image graph is cached, asked for labels whose prompts are not,
    reaches for the text tower: one line, not a ModuleNotFoundError traceback; so does any
    backbone family that runs on torch."""
    code = """
from artstyle.errors import ArtstyleError
from artstyle.features.backbones import _family
from artstyle.model.prompts import text_embeddings
out = []
for call in (lambda: text_embeddings("clip-vit-b16", None, "file:0123", ["a painting of the orphism movement."]),
             lambda: _family("open_clip"), lambda: _family("timm")):
    try:
        call()
        out.append("answered")
    except ArtstyleError as exc:
        out.append(str(exc))
"""
    answer = _fresh(code, tmp_path / "cache")
    assert len(answer["out"]) == 3 and answer["heavy"] == []
    for line in answer["out"]:
        assert "needs PyTorch" in line and "pip install 'artstyle[torch]'" in line, line
    assert "text tower" in answer["out"][0]


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
    code, printed, errors, heavy = _cli("predict", *images, "--format", "json", cache=tmp_path / "cache")
    assert (code, heavy) == (0, []), errors
    predictions = json.loads(printed)
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


def test_without_its_graph_a_model_of_an_embedded_backbone_runs_the_shipped_one(trained_model, images, tmp_path):
    clf, _ = trained_model
    folder = clf.save(tmp_path / "no-graph", graphs=False)
    assert not (folder / "embedding.onnx").exists()
    assert "graph" not in json.loads((folder / "config.json").read_text())["features"]["backbones"][0]
    code = (
        "from artstyle import StyleClassifier\n"
        f"out = StyleClassifier.load({str(folder)!r}, cache_dir=False, show_progress=False).predict_proba({images!r}).tolist()\n"
    )
    answer = _fresh(code, tmp_path / "cache")
    assert answer["heavy"] == []
    np.testing.assert_allclose(answer["out"], clf.predict_proba(images), atol=1e-5)
    assert not (tmp_path / "cache" / "graphs").exists()  # nothing exported


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

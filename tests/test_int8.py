"""int8 embeddings: `artstyle quantize` writes one into a model folder, calibrated on the
model's own training paintings; `--precision` chooses which embedding runs."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
from synth import make_tree
from test_cli import run

from artstyle import ArtstyleError, BundleError, StyleClassifier, default_model_path, normalize_label, quantize_model
from artstyle.features import int8


@pytest.fixture(scope="module")
def quantized(trained_model, paintings, tmp_path_factory):
    """The session's trained model with an int8 embedding added, in a folder of its own."""
    _, folder = trained_model
    result = quantize_model(folder, paintings, out=tmp_path_factory.mktemp("int8") / "model", paintings=48,
                            show_progress=False)
    return result


@pytest.fixture(scope="module")
def new_paintings(tmp_path_factory):
    """Paintings by other (generated) artists than the training ones, same movements."""
    tree = make_tree(tmp_path_factory.mktemp("new-paintings"), artists=2, per_artist=5, seed=7)
    return sorted(str(p) for p in tree.rglob("*.jpg"))


def test_int8_follows_fp32_on_new_paintings_and_really_runs_in_int8(quantized, new_paintings):
    fp32 = StyleClassifier.load(quantized.path, precision="fp32", cache_dir=False, show_progress=False)
    int8_ = StyleClassifier.load(quantized.path, precision="int8", cache_dir=False, show_progress=False)
    assert (fp32.precision_, int8_.precision_) == ("fp32", "int8")
    a, b = fp32.extract(new_paintings).features, int8_.extract(new_paintings).features
    cosine = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert np.abs(a - b).max() > 1e-3  # another network ran, not the fp32 one
    assert cosine.mean() > 0.93, cosine.mean()
    pa, pb = fp32.predict_proba(new_paintings), int8_.predict_proba(new_paintings)
    same = np.mean(pa.argmax(1) == pb.argmax(1))
    print(f"int8 vs fp32 on {len(new_paintings)} new paintings: same top-1 {same:.0%}, "
          f"max |dp| {np.abs(pa - pb).max():.2e}, feature cosine {cosine.mean():.4f} (min {cosine.min():.4f})")
    assert same >= 0.95
    labels = [normalize_label(Path(p).parent.parent.name) for p in new_paintings]
    assert np.mean(fp32.classes_[pa.argmax(1)] == np.array(labels)) >= 0.7  # a model that learned, not noise


def test_the_folder_records_calibration_and_agreement(quantized, trained_model):
    _, source = trained_model
    config = json.loads((quantized.path / "config.json").read_text())
    (entry,) = config["features"]["backbones"]
    record = entry["graph_int8"]
    assert record["file"] == "embedding.int8.onnx" and (quantized.path / record["file"]).is_file()
    assert record["of"] == entry["graph"]["sha256"]
    assert record["quantization"]["paintings"] == quantized.calibration == 48
    assert record["quantization"]["agreement"]["paintings"] == quantized.compared > 0
    assert quantized.same_top1 >= 0.95
    assert not (source / "embedding.int8.onnx").exists()  # --out leaves the original alone


def test_int8_features_have_their_own_cache_entries(quantized, tmp_path):
    fp32 = StyleClassifier.load(quantized.path, precision="fp32", cache_dir=tmp_path, show_progress=False)
    int8_ = StyleClassifier.load(quantized.path, precision="int8", cache_dir=tmp_path, show_progress=False)
    (a,), (b,) = fp32.feature_extractors, int8_.feature_extractors
    assert b.identity().startswith(a.identity() + "|int8:")
    assert "int8" not in a.identity()  # fp32 keys are unchanged, old caches stay valid


def test_a_tampered_int8_file_is_refused_and_fp32_ignores_it(quantized, new_paintings, tmp_path, monkeypatch):
    folder = shutil.copytree(quantized.path, tmp_path / "model")
    data = bytearray((folder / "embedding.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "embedding.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="embedding.int8.onnx: altered"):
        StyleClassifier.load(folder, precision="int8", cache_dir=False)
    monkeypatch.setattr(int8, "int8_pays_here", lambda features=None, weight_range="reduced": True)
    with pytest.raises(BundleError, match="altered"):
        StyleClassifier.load(folder, cache_dir=False)  # auto would run it: refused too
    fp32 = StyleClassifier.load(folder, precision="fp32", cache_dir=False, show_progress=False)
    reference = StyleClassifier.load(quantized.path, precision="fp32", cache_dir=False, show_progress=False)
    np.testing.assert_array_equal(fp32.predict_proba(new_paintings[:6]), reference.predict_proba(new_paintings[:6]))


@pytest.mark.torch
def test_auto_takes_int8_only_where_it_pays_and_a_folder_without_it_works_as_before(
        quantized, trained_model, monkeypatch):
    _, plain = trained_model
    monkeypatch.setattr(int8, "int8_pays_here", lambda features=None, weight_range="reduced": True)
    assert StyleClassifier.load(quantized.path, cache_dir=False).precision_ == "int8"
    assert StyleClassifier.load(quantized.path, cache_dir=False, engine="torch").precision_ == "fp32"
    assert StyleClassifier.load(plain, cache_dir=False).precision_ == "fp32"
    monkeypatch.setattr(int8, "int8_pays_here", lambda features=None, weight_range="reduced": False)
    assert StyleClassifier.load(quantized.path, cache_dir=False).precision_ == "fp32"
    with pytest.raises(ArtstyleError, match="has no int8 embedding; write one with `artstyle quantize"):
        StyleClassifier.load(plain, precision="int8", cache_dir=False)
    with pytest.raises(ArtstyleError, match="int8 runs on the onnx engine"):
        StyleClassifier.load(quantized.path, precision="int8", engine="torch", cache_dir=False)
    with pytest.raises(ArtstyleError, match="unknown precision 'int4'"):
        StyleClassifier.load(quantized.path, precision="int4", cache_dir=False)


def test_int8_outputs_carry_no_mean_shift_on_the_calibration_views(trained_model, paintings):
    """Rounding shifts outputs systematically; the quantized graph adds the mean shift back."""
    import onnxruntime

    from artstyle.model.quantize import calibration_views

    clf, folder = trained_model
    (extractor,) = clf.feature_extractors
    graph = (folder / "embedding.onnx").read_bytes()
    views = list(calibration_views(sorted(paintings.rglob("*.jpg"))[:32], extractor, False))
    plain, corrected = (int8.quantize_graph(graph, views, "full", correct_outputs=c) for c in (False, True))

    def pooled(g: bytes) -> np.ndarray:
        session = onnxruntime.InferenceSession(g, providers=["CPUExecutionProvider"])
        return np.concatenate([session.run(None, {"images": v})[0] for v in views])

    fp32, uncorrected, fixed = (pooled(g) for g in (graph, plain, corrected))
    scale = fp32.std(0).mean()
    shift_plain, shift_corrected = (np.abs((out - fp32).mean(0)).max() / scale for out in (uncorrected, fixed))
    print(f"largest mean shift of a pooled value, in units of its spread: {shift_plain:.4f} -> {shift_corrected:.6f}")
    assert shift_plain > 0.01  # there was a shift to correct
    assert shift_corrected < 1e-4
    assert np.abs(fixed - uncorrected).max() > 0  # the correction is in the graph itself


def test_which_cpus_gain_from_int8_and_which_weight_range_they_run_accurately():
    avx2, vnni, arm = {"SSE2": True, "AVX": True, "AVX2": True}, {"AVX2": True, "AVX512VNNI": True}, {"ASIMDDP": True}
    assert int8.int8_pays_here(avx2) and int8.int8_pays_here(arm) and int8.int8_pays_here(vnni)
    assert not int8.int8_pays_here({"SSE2": True, "AVX": True})
    assert not int8.int8_pays_here({})
    # full-range weights saturate AVX2's 16-bit sums: only exact dot products run them
    assert int8.int8_pays_here(vnni, "full") and int8.int8_pays_here(arm, "full")
    assert not int8.int8_pays_here(avx2, "full")
    assert [int8.resolve_weight_range("auto", f) for f in (vnni, arm, avx2, {})] == ["full", "full", "reduced", "reduced"]
    assert int8.resolve_weight_range("reduced", vnni) == "reduced" and int8.resolve_weight_range("full", avx2) == "full"
    with pytest.raises(ArtstyleError, match="unknown weight range 'half'"):
        int8.resolve_weight_range("half")
    assert int8.graph_weight_range({}) == "reduced"  # folders quantized before the choice existed


def test_a_full_range_graph_runs_by_default_only_where_its_products_are_exact(trained_model, paintings, tmp_path,
                                                                              monkeypatch, caplog):
    _, folder = trained_model
    full = quantize_model(folder, paintings, out=tmp_path / "full", paintings=16, weight_range="full",
                          show_progress=False)
    reduced = quantize_model(folder, paintings, out=tmp_path / "reduced", paintings=16, weight_range="reduced",
                             show_progress=False)
    assert (full.weight_range, reduced.weight_range) == ("full", "reduced")
    graphs = {}
    for result in (full, reduced):
        entry = json.loads((result.path / "config.json").read_text())["features"]["backbones"][0]["graph_int8"]
        assert entry["quantization"]["weight_range"] == result.weight_range
        assert entry["quantization"]["weights"] == f"int8, per output channel, {result.weight_range} range"
        graphs[result.weight_range] = (result.path / entry["file"]).read_bytes()
    assert graphs["full"] != graphs["reduced"]
    monkeypatch.setattr(int8, "cpu_features", lambda: {"AVX2": True})  # a CPU without VNNI
    assert StyleClassifier.load(reduced.path, cache_dir=False).precision_ == "int8"
    assert StyleClassifier.load(full.path, cache_dir=False).precision_ == "fp32"
    monkeypatch.setattr(logging.getLogger("artstyle"), "propagate", True)  # a CLI test may have turned it off
    with caplog.at_level("WARNING", logger="artstyle"):
        forced = StyleClassifier.load(full.path, precision="int8", cache_dir=False, show_progress=False)
    assert forced.precision_ == "int8" and "full-range" in caplog.text and "--weight-range reduced" in caplog.text
    monkeypatch.setattr(int8, "cpu_features", lambda: {"AVX2": True, "AVX512VNNI": True})
    assert StyleClassifier.load(full.path, cache_dir=False).precision_ == "int8"
    from artstyle.apps.model_card import precision_summary

    config = json.loads((full.path / "config.json").read_text())
    assert "int8 (full-range weights)" in precision_summary(config, here=True)
    assert "int8 runs by default here" in precision_summary(config, here=True)
    monkeypatch.setattr(int8, "cpu_features", lambda: {"AVX2": True})
    assert "this CPU lacks AVX-512 VNNI or ARM dot products" in precision_summary(config, here=True)


def test_quantize_needs_the_models_own_training_paintings(trained_model, tmp_path):
    _, folder = trained_model
    others = make_tree(tmp_path / "others", artists=1, per_artist=2, seed=11)
    with pytest.raises(ArtstyleError, match="none of the images under .* are its training paintings"):
        quantize_model(folder, others, out=tmp_path / "q", show_progress=False)
    assert not (tmp_path / "q").exists()
    with pytest.raises(ArtstyleError, match="shipped inside the installed package; pass --out"):
        quantize_model(default_model_path(), others, show_progress=False)


def test_stratified_calibration_covers_every_movement_and_source():
    from artstyle.data.dataset import ImageRecord
    from artstyle.model.quantize import stratified

    records = [ImageRecord(f"{label}/a/{i}.jpg", label, "a", f"{label}{i}", source=source)
               for label, n, source in (("big", 200, "web"), ("small", 3, "scans"), ("mid", 20, "web"))
               for i in range(n)]
    chosen = stratified(records, 12, seed=0)
    assert len(chosen) == 12 and {r.label for r in chosen} == {"big", "small", "mid"}
    assert sum(r.label == "small" for r in chosen) == 3  # a small movement gives all it has
    assert stratified(records, 12, seed=0) == chosen


def test_cli_quantize_info_and_precision(trained_model, paintings, new_paintings, tmp_path, capsys, monkeypatch):
    _, folder = trained_model
    out = tmp_path / "model8"
    code, _, said = run(capsys, monkeypatch, "quantize", folder, paintings, "--out", out, "--paintings", 24)
    assert code == 0, said
    assert "calibrated on 24 training paintings" in said
    assert "range int8 embedding" in said
    table = " ".join(run(capsys, monkeypatch, "info", out)[1].replace("│", " ").split())  # cells wrap
    assert "int8 (full-range weights) calibrated on 24 training paintings" in table or \
        "int8 (reduced-range weights) calibrated on 24 training paintings" in table
    card = run(capsys, monkeypatch, "info", out, "--format", "markdown")[1]
    assert "Embedding precision: fp32, and int8 (" in card and "weights) calibrated on 24" in card
    answers = {}
    for precision in ("int8", "fp32"):
        code, printed, said = run(capsys, monkeypatch, "predict", *new_paintings[:4], "--model", out,
                                  "--precision", precision, "--format", "json")
        assert code == 0, said
        answers[precision] = [r["predictions"][0]["label"] for r in json.loads(printed)]
    assert answers["int8"] == answers["fp32"]
    code, _, said = run(capsys, monkeypatch, "predict", new_paintings[0], "--model", folder, "--precision", "int8")
    assert code == 1 and "has no int8 embedding" in said and len(said.strip().splitlines()) == 1


def test_ray_runs_the_int8_graph_and_refuses_a_missing_one_before_starting(quantized, trained_model, new_paintings,
                                                                            tmp_path):
    from artstyle.apps.ray_predict import predict_on_ray
    from artstyle.features.extraction import decode_views
    from artstyle.features.ray_extraction import ExtractorSpec

    clf = StyleClassifier.load(quantized.path, precision="int8", cache_dir=False, show_progress=False)
    (local,) = clf.feature_extractors
    remote = ExtractorSpec.of(local, None, "onnx").build()  # what each Ray actor builds
    assert remote.identity() == local.identity()
    batch = np.stack([decode_views(p, local.preprocessing)[0] for p in new_paintings[:3]])
    np.testing.assert_array_equal(remote(batch), local(batch))
    _, plain = trained_model
    with pytest.raises(ArtstyleError, match="has no int8 embedding"):
        predict_on_ray(new_paintings[0], plain, tmp_path / "out", precision="int8", address="nowhere:1")


def test_the_api_serves_int8_answers_and_says_so(quantized, new_paintings):
    from fastapi.testclient import TestClient

    from artstyle import create_app

    clf = StyleClassifier.load(quantized.path, precision="int8", cache_dir=False, show_progress=False)
    with TestClient(create_app(clf, model_name="int8")) as client:
        assert client.get("/api/model").json()["precision"] == "int8"
        files = [("files", (Path(p).name, Path(p).read_bytes(), "image/jpeg")) for p in new_paintings[:3]]
        answers = client.post("/api/predict", files=files).json()
    assert [a["predictions"][0]["label"] for a in answers] == clf.predict(new_paintings[:3])


def test_retraining_into_a_quantized_folder_drops_its_stale_int8_graph(quantized, trained_model, tmp_path):
    clf, _ = trained_model
    folder = shutil.copytree(quantized.path, tmp_path / "model")
    clf.save(folder)  # a model trained afresh, saved over the quantized one
    assert not (folder / "embedding.int8.onnx").exists()
    assert "graph_int8" not in json.loads((folder / "config.json").read_text())["features"]["backbones"][0]
    assert StyleClassifier.load(folder, cache_dir=False).precision_ == "fp32"

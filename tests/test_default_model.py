"""The model that ships inside the package works right after install, with no --model."""

import json
import sys

import numpy as np
from synth import STYLES, non_paintings_for_tests, paint

import artstyle
from artstyle import StyleClassifier
from artstyle.apps.cli import main
from artstyle.apps.model_card import model_card
from artstyle.model.bundle import load_bundle


def test_default_model_ships_with_a_card_that_matches_it():
    folder = artstyle.default_model_path()
    bundle = load_bundle(folder)  # validates every file
    assert len(bundle.config["labels"]) == 18 and bundle.detector is not None  # all Pandora18k movements
    assert bundle.detector.kind_weight is not None  # it learnt real photos, charts and documents
    assert "root" not in bundle.config["dataset"]  # counts and a name, never a local path
    assert bundle.config["features"]["recipe"] == "sized+texture" and bundle.config["balance"] == "breadth"
    assert set(bundle.config["dataset"]["sources"]) == {"paintings", "wikiart"}  # full-size and small paintings
    assert {"full size", "small (short side <= 256 px)"} <= set(bundle.metrics["by_size"])
    # The card is generated from the bundle: after a retrain it must be regenerated too.
    assert (folder / "MODEL_CARD.md").read_text() == model_card(bundle, title=folder.name)


def test_predict_without_model_uses_the_default(tmp_path, capsys, monkeypatch):
    image = tmp_path / "painting.png"
    paint(list(STYLES)[2], 0, seed=1, size=(320, 256)).save(image)
    monkeypatch.setattr(sys, "argv", ["artstyle", "predict", str(image), "--format", "json", "--top-k", "5"])
    try:
        main()
    except SystemExit as exc:
        assert exc.code in (0, None)
    (row,) = json.loads(capsys.readouterr().out)
    labels = load_bundle(artstyle.default_model_path()).config["labels"]
    probabilities = [p["probability"] for p in row["predictions"]]
    assert [p["label"] for p in row["predictions"]] != [] and all(p["label"] in labels for p in row["predictions"])
    assert probabilities == sorted(probabilities, reverse=True) and 0 < sum(probabilities) <= 1 + 1e-6
    assert {"uncertain", "mixed", "is_painting"} <= set(row) and row["error"] is None


def test_default_model_flags_non_paintings():
    clf = StyleClassifier.load(artstyle.default_model_path(), cache_dir=False, show_progress=False)
    flagged = ~clf.is_painting([img for _, img in non_paintings_for_tests()])
    assert np.mean(flagged) >= 0.95


def test_the_shipped_model_answers_as_it_did_when_it_was_pinned():
    """Refactors leave answers identical: the shipped model's fp32 probabilities on 24
    generated paintings, written by scripts/pin_default_answers.py when the model was
    trained, within float rounding (the fixture is rewritten only with a retrained model)."""
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from pin_default_answers import OUT, pictures

    pinned = json.loads(OUT.read_text())
    config = json.loads((artstyle.default_model_path() / "config.json").read_text())
    assert pinned["model_created"] == config["created"], "the shipped model changed: run scripts/pin_default_answers.py"
    clf = StyleClassifier.load(artstyle.default_model_path(), precision="fp32", cache_dir=False, show_progress=False)
    assert list(clf.classes_) == pinned["labels"]
    np.testing.assert_allclose(clf.predict_proba(pictures()), pinned["probabilities"], atol=2e-5)

"""Heat-maps: Grad-CAM through the recipe's views and the head points at the part of a
painting that carries the movement, keeps the picture's shape, and is faithful (removing
the hottest cells costs more probability than removing random ones)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
from synth import FAST, NEEDS_TORCH, STYLES, make_tree, paint
from test_cli import run

pytest.importorskip("torch", reason=NEEDS_TORCH)  # every test here needs it

from artstyle import StyleClassifier, normalize_label
from artstyle.errors import ArtstyleError
from artstyle.model.explain import deletion_test

STYLES4 = list(STYLES)[:4]



@pytest.fixture(scope="module")
def multicrop_model(tmp_path_factory, cache_dir):
    """The default recipe (global view + 2 x 2 tiles), saved: (classifier, folder)."""
    tree = make_tree(tmp_path_factory.mktemp("explain-data"), styles=STYLES4, artists=3, per_artist=4)
    clf = StyleClassifier(**{**FAST, "features": "multicrop"}, cache_dir=cache_dir, show_progress=False).fit(tree)
    return clf, clf.save(tmp_path_factory.mktemp("explain-model") / "model")


def _one_quadrant(style: str, quadrant: int, seed: int) -> Image.Image:
    """A square of grey noise with a picture in `style` in one quadrant only."""
    rng = np.random.default_rng(seed)
    canvas = Image.fromarray(np.clip(rng.normal(128, 8, (320, 320, 3)), 0, 255).astype(np.uint8))
    canvas.paste(paint(style, artist=1, seed=900 + seed, size=(160, 160)), ((quadrant % 2) * 160, (quadrant // 2) * 160))
    return canvas


@pytest.mark.parametrize("recipe", ["global", "multicrop"])
def test_the_heat_lies_where_the_movement_is(recipe, trained_model, multicrop_model):
    clf = trained_model[0] if recipe == "global" else multicrop_model[0]
    masses = []
    for quadrant in range(4):
        for style in STYLES4:
            (result,) = clf.explain([_one_quadrant(style, quadrant, seed=quadrant)], movement=normalize_label(style))
            x, y = (quadrant % 2) * 160, (quadrant // 2) * 160
            masses.append(result.heat[y : y + 160, x : x + 160].sum() / result.heat.sum())
    # a quarter of the picture: 0.25 of the mass if the map were blind
    assert np.mean(masses) >= 0.6 and min(masses) >= 0.4, np.round(masses, 2)


@pytest.mark.parametrize("recipe", ["global", "multicrop"])
def test_a_patch_beside_the_centre_square_is_where_the_heat_is(recipe, trained_model, multicrop_model):
    """A wide canvas of grey noise with a painting at its far end, outside the square the
    model answers from: the map of its movement is several times hotter on the painting
    than on the rest (contrast: mean heat inside / mean heat outside)."""
    clf = trained_model[0] if recipe == "global" else multicrop_model[0]
    contrasts = []
    for i, style in enumerate(STYLES4):
        rng = np.random.default_rng(i)
        canvas = Image.fromarray(np.clip(rng.normal(128, 8, (160, 480, 3)), 0, 255).astype(np.uint8))
        left = 0 if i % 2 else 360
        canvas.paste(paint(style, artist=1, seed=950 + i, size=(120, 160)), (left, 0))
        (result,) = clf.explain([canvas], movement=normalize_label(style))
        inside = np.zeros(result.heat.shape, bool)
        inside[:, left : left + 120] = True
        contrasts.append(result.heat[inside].mean() / max(result.heat[~inside].mean(), 1e-6))
    assert min(contrasts) >= 2, np.round(contrasts, 2)


def test_the_map_covers_the_picture_it_explains(multicrop_model):
    clf, _ = multicrop_model
    wide = paint(STYLES4[2], artist=5, seed=3, size=(300, 180))
    (result,) = clf.explain([wide])
    assert result.heat.shape == (180, 300) and 0 <= result.heat.min() and result.heat.max() == pytest.approx(1.0)
    assert result.movement == clf.predict([wide])[0]
    assert result.probability == pytest.approx(clf.predict_proba([wide]).max(), abs=1e-5)
    # the model answers from the centre square; the squares at both ends are explained too
    assert result.heat[:, :60].max() > 0.05 and result.heat[:, 240:].max() > 0.05
    picture = result.overlay()
    assert picture.size == (300, 180)
    assert result.overlay(max_side=150).size == (150, 90)  # the aspect ratio is kept


def test_the_deletion_test_blurs_away_the_hottest_fifth_of_the_seen_square(multicrop_model, monkeypatch):
    """The mechanics behind benchmarks/explain.py (faithfulness is measured there, on real
    paintings: these generated movements saturate the probabilities at 0 or 1)."""
    from artstyle.model import explain

    clf, _ = multicrop_model
    image = paint(STYLES4[3], artist=5, seed=4, size=(280, 200))
    edits = []
    original = explain._paint_over
    monkeypatch.setattr(explain, "_paint_over", lambda *a: edits.append(original(*a)) or edits[-1])
    d = deletion_test(clf, image, fraction=0.2, draws=2)
    assert d.movement == clf.predict([image])[0]
    assert d.original == pytest.approx(clf.predict_proba([image]).max(), abs=1e-5)
    assert len(edits) == 3 and 0 <= d.hottest_removed <= 1 and 0 <= d.random_removed <= 1
    for edited in edits:
        changed = np.any(np.asarray(edited) != np.asarray(image), axis=2)
        assert not changed[:, :40].any() and not changed[:, 240:].any()  # outside the centre square: untouched
        assert 0.12 <= changed[:, 40:240].mean() <= 0.21  # a fifth of it, less pixels the blur left alike
    assert not np.array_equal(np.asarray(edits[1]), np.asarray(edits[2]))  # random draws differ


def test_bad_input_and_unknown_movements(multicrop_model, tmp_path):
    clf, _ = multicrop_model
    (tmp_path / "notes.jpg").write_text("not an image")
    good = paint(STYLES4[0], artist=6, seed=1)
    results = clf.explain([tmp_path / "notes.jpg", good])
    assert results[0].error.startswith("not a readable image") and results[0].heat is None
    assert results[1].error is None and results[1].heat is not None
    with pytest.raises(ArtstyleError, match="unknown movement 'cubism'"):
        clf.explain([good], movement="cubism")


def test_cli_explain_writes_one_overlay_per_image(multicrop_model, tmp_path, capsys, monkeypatch):
    _, folder = multicrop_model
    for artist in ("Painter_A", "Painter_B"):  # two files called 1.jpg
        (tmp_path / "in" / artist).mkdir(parents=True)
        paint(STYLES4[1], artist=7, seed=len(artist), size=(240, 160)).save(tmp_path / "in" / artist / "1.jpg")
    (tmp_path / "in" / "notes.jpg").write_text("not an image")
    args = ["explain", str(tmp_path / "in"), "-m", str(folder)]
    result = subprocess.run([sys.executable, "-m", "artstyle", *args, "--out", str(tmp_path / "out")],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert written == ["1-1.explain.png", "1-2.explain.png"]
    panel = Image.open(tmp_path / "out" / written[0])  # painting and heat-map, each 640 px wide, side by side
    assert panel.width == 2 * 640 + 12 and panel.height > 640 * 160 / 240
    assert "notes.jpg: not a readable image" in result.stderr
    code, _, err = run(capsys, monkeypatch, *args, "--overlay-only", "--out", tmp_path / "bare")  # in-process from
    assert code == 0 and Image.open(tmp_path / "bare" / written[0]).size == (240, 160)  # here: one start-up is enough
    code, _, err = run(capsys, monkeypatch, *args, "--out", tmp_path / "rings", "--movement", "rings")
    assert code == 1 and "unknown movement 'rings'" in err
    # one answer, one number: the movement and probability explain prints are predict's
    painting = tmp_path / "in" / "Painter_A" / "1.jpg"
    code, out, _ = run(capsys, monkeypatch, "explain", painting, "-m", folder, "--out", tmp_path / "same")
    (answer,) = json.loads(run(capsys, monkeypatch, "predict", painting, "-m", folder, "--format", "json")[1])
    top = answer["predictions"][0]
    assert code == 0 and f": {top['label']} {top['probability']:.0%} -> " in out


def test_the_report_shows_each_confident_mistake_with_its_heat_map_and_nearest_paintings(multicrop_model, tmp_path):
    from artstyle.apps.report import render_report

    clf, _ = multicrop_model
    make_tree(tmp_path / "data", styles=[STYLES4[1]], artists=1, per_artist=3, seed=7)
    (tmp_path / "data" / STYLES4[1]).rename(tmp_path / "data" / STYLES4[0])  # dots labelled as stripes
    evaluation = clf.evaluate(tmp_path / "data")
    wrong = int((evaluation.proba.argmax(axis=1) != evaluation.y_true).sum())
    assert wrong >= 2
    page = render_report(evaluation, "mistakes", clf)
    predicted = [evaluation.labels[k] for k in evaluation.proba.argmax(axis=1)]
    assert page.count("<img class=panel") == wrong and page.count("nearest training paintings") == wrong
    assert all(f'alt="where it saw {label}"' in page for label in predicted)
    assert page.count("class=mistake") == wrong
    plain = render_report(evaluation, "mistakes")  # without the classifier: thumbnails only
    assert "where it saw" not in plain and plain.count("class=mistake") == wrong

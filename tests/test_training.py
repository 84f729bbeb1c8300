"""Training learns: held-out accuracy on generated paintings, with both split modes."""

import io
import shutil

import numpy as np
import pytest
from PIL import Image
from synth import FAST, STYLES, make_tree, paint, write_png_bomb

from artstyle import NotFittedError, StyleClassifier, normalize_label


def test_stratified_model_generalises(trained_model):
    clf, _ = trained_model
    m = clf.metrics_
    assert m["evaluated_on"] == "test split" and m["n_images"] >= 8
    assert m["accuracy"] >= 0.9, m
    assert m["top3_accuracy"] >= m["accuracy"]
    assert list(clf.classes_) == sorted(normalize_label(s) for s in list(STYLES)[:4])
    assert clf.config_["head"]["temperature"] > 0


def test_artist_split_generalises_to_unseen_artists(paintings, cache_dir):
    clf = StyleClassifier(**FAST, split="artist", seed=1, cache_dir=cache_dir, show_progress=False).fit(paintings)
    m = clf.metrics_
    assert m["n_images"] >= 16 and m["untested"] == []
    assert m["accuracy"] >= 0.9, m
    assert m["macro_f1"] >= 0.85


def test_predict_on_new_paintings_paths_and_pil(trained_model, tmp_path):
    clf, _ = trained_model
    styles = list(STYLES)[:4]
    images = [paint(style, artist=7, seed=500 + i) for i, style in enumerate(styles)]  # unseen artist
    paths = []
    for i, img in enumerate(images):
        paths.append(tmp_path / f"new{i}.png")
        img.save(paths[-1])
    expected = [normalize_label(s) for s in styles]
    assert clf.predict(images) == expected
    proba = clf.predict_proba(paths)
    assert proba.shape == (4, 4) and np.allclose(proba.sum(axis=1), 1)
    assert [clf.classes_[i] for i in proba.argmax(axis=1)] == expected
    top = clf.predict_top_k([paths[0], tmp_path / "missing.jpg"], k=2)
    assert [p for p, _ in top[0].predictions][0] == expected[0] and len(top[0].predictions) == 2
    assert top[0].predictions[0][1] >= top[0].predictions[1][1]
    assert top[1].error == "no such file" and top[1].predictions == []


def test_unfitted_classifier_says_so():
    with pytest.raises(NotFittedError, match="not fitted"):
        StyleClassifier().predict(["x.jpg"])


def test_fit_on_images_and_labels(cache_dir):
    styles = list(STYLES)[:3]
    images = [paint(s, a, seed=900 + 10 * a + i) for s in styles for a in range(3) for i in range(6)]
    labels = [s for s in styles for _ in range(18)]
    clf = StyleClassifier(**FAST, cache_dir=cache_dir, show_progress=False).fit(images, labels)
    assert clf.metrics_["accuracy"] >= 0.9


def _bad_tree(root):
    make_tree(root, styles=list(STYLES)[:3], artists=3, per_artist=5, seed=3)
    cls = root / "01_StripedArt"
    bad = {
        "01_StripedArt/Painter A0/empty.jpg": b"",
        "01_StripedArt/Painter A0/notes.jpg": b"not an image at all\n" * 50,
    }
    for rel, content in bad.items():
        (root / rel).write_bytes(content)
    buffer = io.BytesIO()
    paint("01_StripedArt", 1, 77, size=(400, 300)).save(buffer, format="JPEG")
    (cls / "Painter B0" / "cut.jpg").write_bytes(buffer.getvalue()[:3000])
    write_png_bomb(cls / "Painter B0" / "bomb.png")
    # readable oddities
    paint("01_StripedArt", 1, 78).convert("CMYK").save(cls / "Painter B0" / "cmyk.jpg")
    deep = (np.asarray(paint("01_StripedArt", 1, 79).convert("L"), dtype=np.uint16) * 257)
    Image.fromarray(deep).save(cls / "Painter B0" / "deep16.png")
    paint("01_StripedArt", 1, 80).convert("RGBA").save(cls / "Painter B0" / "alpha.png")
    exif = Image.Exif()
    exif[0x0112] = 6
    paint("01_StripedArt", 1, 81).save(cls / "Painter B0" / "rotated.jpg", exif=exif)
    shutil.copy(cls / "Painter A0" / "0.jpg", root / "02_dot_painting" / "Painter A1" / "0-copy.jpg")
    return root, {
        "01_StripedArt/Painter A0/empty.jpg",
        "01_StripedArt/Painter A0/notes.jpg",
        "01_StripedArt/Painter B0/cut.jpg",
        "01_StripedArt/Painter B0/bomb.png",
    }


def test_training_survives_bad_files_and_reports_exactly_them(tmp_path, cache_dir, caplog):
    root, expected_bad = _bad_tree(tmp_path / "data")
    clf = StyleClassifier(**FAST, cache_dir=cache_dir, show_progress=False).fit(root)
    skipped = {item["path"]: item["reason"] for item in clf.metrics_["skipped"]}
    assert set(skipped) == expected_bad
    assert "empty file" in skipped["01_StripedArt/Painter A0/empty.jpg"]
    assert "decompression bomb" in skipped["01_StripedArt/Painter B0/bomb.png"]
    assert "truncated" in skipped["01_StripedArt/Painter B0/cut.jpg"]
    for path in expected_bad:
        assert any(line.startswith(f"{path}: ") for line in caplog.messages), path
    assert "4 unreadable file(s) skipped" in caplog.text
    assert "filed under several movements" in caplog.text and "0-copy.jpg" in caplog.text
    total = 3 * 3 * 5 + 4 + 4 + 1  # generated + bad + readable oddities + duplicate
    assert clf.config_["dataset"]["n_images"] == total
    assert clf.config_["dataset"]["skipped"] == 4
    assert sum(clf.config_["split"]["counts"].values()) == total

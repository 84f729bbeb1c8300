"""Real collections: painters in several movements, the same image under two movements,
mixed image sizes, and a collection kept in several folders."""

import json
import logging
import os
import shutil
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from synth import FAST, STYLES, paint

from artstyle import StyleClassifier, load_bundle, make_split, scan_dataset
from artstyle.data.doctor import check_dataset
from artstyle.data.splits import artist_key, make_folds, parse_splits_csv
from artstyle.features.finetune_recipe import FineTuning
from artstyle.model.head_fitting import HeadFitter
from artstyle.model.metrics import classification_metrics, score_once
from artstyle.model.training import scorable_rows, train_head

STYLE_NAMES = list(STYLES)[:5]  # stripes, dots, strokes, blocks, rings
RINGS = STYLE_NAMES[4]


def _write(folder, style, artist, n, seed, size=(176, 144)):
    folder.mkdir(parents=True, exist_ok=True)
    paint(style, artist, seed=seed, size=size).save(folder / f"{n}.jpg", quality=90)


def wandering_tree(root, per_artist=4):
    """Four movements with three painters each, plus two painters who move: 'Wanderer'
    paints stripes (3 paintings), dots (1) and is the only painter of rings (2 paintings: the
    Pandora18k and WikiArt case of Dali); 'Roamer' paints strokes, blocks and dots."""
    for s, style in enumerate(STYLE_NAMES[:4]):
        for a in range(3):
            for n in range(per_artist):
                _write(root / style / f"Painter {a}{s}", style, a, n, seed=1000 * s + 100 * a + n)
    moves = {"Wanderer": STYLE_NAMES[:2] + [RINGS], "Roamer": [STYLE_NAMES[2], STYLE_NAMES[3], STYLE_NAMES[1]]}
    for artist, styles in moves.items():
        for style in styles:
            for n in range({RINGS: 2, STYLE_NAMES[0]: 3, STYLE_NAMES[1]: 1}.get(style, per_artist) if artist == "Wanderer"
                           else per_artist):
                _write(root / style / artist, style, 5, n, seed=50000 + hash(artist) % 1000 + 10 * n)
    return root


@pytest.fixture(scope="module")
def wandering(tmp_path_factory):
    return wandering_tree(tmp_path_factory.mktemp("wandering"))


def _sides_by_artist(records, assignment):
    sides = defaultdict(set)
    for r in records:
        sides[artist_key(r)].add(assignment[r.path])
    return sides


def test_artist_splits_keep_every_movement_in_training(wandering, caplog):
    records = scan_dataset(wandering, show_progress=False).records
    labels = {r.label for r in records}
    rescued = 0
    for seed in range(12):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="artstyle"):
            split = make_split(records, "artist", seed=seed, val_fraction=0.1, test_fraction=0.2)
        assert all(len(s) == 1 for s in _sides_by_artist(records, split.assignment).values())
        assert {r.label for r in records if split.assignment[r.path] == "train"} == labels
        assert "rings" in split.untested  # its only painter always trains
        rescued += any("rings: all its artists were held out" in m for m in caplog.messages)
    assert rescued, "some seed deals the Wanderer to a held-out split, and the split takes him back"


def test_folds_give_every_movement_training_images_in_every_fold(wandering):
    records = scan_dataset(wandering, show_progress=False).records
    for seed in range(8):
        folds = make_folds(records, 3, "artist", seed=seed)
        for fold in range(3):
            assert {r.label for r, f in zip(records, folds) if f != fold} == {r.label for r in records}
        by_artist = defaultdict(set)
        for r, f in zip(records, folds):
            by_artist[artist_key(r)].add(int(f))
        assert all(len(f) == 1 for f in by_artist.values()), "an artist sits in one fold, in every movement"
        assert set(folds[[r.artist == "Wanderer" for r in records]]) == {-1}


def test_a_head_fitted_without_a_class_gives_it_no_probability():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(60, 5)).astype(np.float32)
    y = np.repeat([0, 1, 3], 20)  # class 2 has no rows
    x[:, 0] += 3 * y
    for kind in ("logreg", "svm", "mlp"):
        head = HeadFitter(kind, x, y, 4).fit(1e-2)
        proba = head.predict_proba(x)
        assert proba.shape == (60, 4) and np.allclose(proba[:, 2], 0) and np.allclose(proba.sum(axis=1), 1)
        assert (proba.argmax(axis=1) == y).mean() > 0.8


def test_train_head_does_not_score_rows_whose_class_is_missing_from_their_fold():
    rng = np.random.default_rng(1)
    y = np.repeat(np.arange(3), 30)
    x = rng.normal(size=(90, 4)).astype(np.float32) + 2 * y[:, None]
    folds = np.tile(np.arange(3), 30)
    folds[y == 2] = 1  # class 2 is all in fold 1
    held = scorable_rows(y, folds)
    assert not held[y == 2].any() and held[y != 2].all()
    trained = train_head(x, y, 3, folds, kinds=("logreg",))
    assert trained.info["held_out"]["n_images"] == 60 and len(trained.held_out_proba) == 60
    assert np.isfinite(trained.head.temperature)


def test_fit_and_evaluate_on_painters_in_several_movements(wandering, tmp_path):
    clf = StyleClassifier(features="global", head="auto", negatives=0, split="artist", test_fraction=0.2,
                          cache_dir=tmp_path / "cache", show_progress=False).fit(wandering)
    assert set(clf.classes_) == {r.label for r in scan_dataset(wandering, show_progress=False).records}
    rows = parse_splits_csv(clf.splits_csv_)
    sides = defaultdict(set)
    for row in rows:
        sides[row["artist"]].add(row["split"])
    assert all(len(s) == 1 for s in sides.values()) and sides["Wanderer"] == {"train"}
    assert clf.metrics_["evaluated_on"] == "test split" and clf.metrics_["accuracy"] > 0.6
    evaluation = clf.evaluate(wandering)  # the training tree: its test split
    assert evaluation.metrics["n_images"] == clf.metrics_["n_images"]
    assert evaluation.metrics["accuracy"] == pytest.approx(clf.metrics_["accuracy"])


@pytest.mark.torch
def test_finetuning_validation_artists_leave_every_movement_in_training(wandering, tmp_path):
    clf = StyleClassifier(**FAST, split="artist", test_fraction=0.2, cache_dir=tmp_path / "cache", show_progress=False,
                          finetune=FineTuning(stages=1, epochs=1, batch_size=8)).fit(wandering)
    rows = parse_splits_csv(clf.splits_csv_)
    assert {r["label"] for r in rows if r["split"] == "train"} == {r["label"] for r in rows}
    assert {r["split"] for r in rows} == {"train", "val", "test"}
    assert len(clf.classes_) == 5


# ------------------------------------------------------------- the same image twice
@pytest.fixture(scope="module")
def mixed(tmp_path_factory):
    """Three movements by four painters each; one painting filed under two movements by two
    different folder names of its painter (as WikiArt does)."""
    root = tmp_path_factory.mktemp("mixed")
    for s, style in enumerate(STYLE_NAMES[:3]):
        for a in range(4):
            for n in range(4):
                _write(root / style / f"Painter {a}{s}", style, a, n, seed=2000 * s + 100 * a + n)
    (root / STYLE_NAMES[1] / "Painter X").mkdir()
    shutil.copy(root / STYLE_NAMES[0] / "Painter 00" / "0.jpg", root / STYLE_NAMES[1] / "Painter X" / "twice.jpg")
    return root


def test_the_same_image_never_sits_on_both_sides(mixed):
    records = scan_dataset(mixed, show_progress=False).records
    twice = [r for r in records if r.sha256 == records[0].sha256]
    assert len(twice) == 2 and len({r.label for r in twice}) == 2 and len({r.artist for r in twice}) == 2
    for mode in ("artist", "stratified"):
        for seed in range(10):
            split = make_split(records, mode, seed=seed, val_fraction=0.1, test_fraction=0.2)
            assert len({split.assignment[r.path] for r in twice}) == 1
            folds = make_folds(records, 3, mode, seed=seed)
            assert len({int(folds[records.index(r)]) for r in twice}) == 1


def test_an_image_in_two_movements_is_right_when_either_is_named():
    keys = ["a", "a", "b", "c"]
    y = np.array([0, 1, 1, 2])
    proba = np.array([[0.2, 0.7, 0.1], [0.2, 0.7, 0.1], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2]])
    kept, y_once, merged = score_once(keys, y, proba)
    assert kept.tolist() == [0, 2, 3] and y_once.tolist() == [1, 1, 2] and merged == 1
    metrics = classification_metrics(y, proba, ["p", "q", "r"], keys=keys)
    assert metrics["n_images"] == 3 and metrics["accuracy"] == pytest.approx(2 / 3)
    assert metrics["in_several_movements"] == 1
    assert classification_metrics(y, proba, ["p", "q", "r"])["accuracy"] == pytest.approx(2 / 4)  # per row


def test_splits_csv_and_evaluate_say_how_the_mixed_image_counts(mixed, tmp_path):
    clf = StyleClassifier(**FAST, split="artist", test_fraction=0.3, seed=1, cache_dir=tmp_path / "cache",
                          show_progress=False).fit(mixed)
    rows = {r["path"]: r for r in parse_splits_csv(clf.splits_csv_)}
    copy = rows[f"{STYLE_NAMES[1]}/Painter X/twice.jpg"]
    original = rows[f"{STYLE_NAMES[0]}/Painter 00/0.jpg"]
    assert copy["also_in"] == original["label"] and original["also_in"] == copy["label"]
    assert copy["split"] == original["split"]
    m = clf.evaluate(mixed, include_training=True).metrics
    memorised = m["on_training_images"]  # the training images, scored apart
    assert m["n_images"] + memorised["n_images"] == len(rows) - 1  # the image filed twice counts once
    assert m["in_several_movements"] + memorised["in_several_movements"] == 1
    report = check_dataset(mixed, show_progress=False).to_dict()
    assert report["exact_duplicates"] == [{"paths": sorted([copy["path"], original["path"]]), "across_classes": True}]


# ---------------------------------------------------------------------------- sizes
@pytest.fixture(scope="module")
def sizes_tree(tmp_path_factory):
    """Rings at 64-224 px (a web copy), three movements at full size (600-900 px)."""
    root = tmp_path_factory.mktemp("sizes")
    rng = np.random.default_rng(0)
    for s, style in enumerate(STYLE_NAMES[1:5]):
        for a in range(3):
            for n in range(4):
                side = int(rng.integers(64, 225)) if style == RINGS else int(rng.integers(600, 901))
                _write(root / style / f"Painter {a}{s}", style, a, n, seed=3000 * s + 100 * a + n,
                       size=(side + side // 4, side))
    return root


def test_check_flags_the_movement_of_small_images(sizes_tree):
    sizes = check_dataset(sizes_tree, show_progress=False).to_dict()["sizes"]
    assert list(sizes["flagged_movements"]) == ["rings"] and sizes["flagged_movements"]["rings"] < 0.5
    assert sizes["per_movement"]["rings"]["max"] <= 224


def test_train_warns_once_and_evaluate_warns_on_small_images(sizes_tree, tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="artstyle"):
        clf = StyleClassifier(**FAST, split="artist", cache_dir=tmp_path / "cache", show_progress=False).fit(sizes_tree)
    warnings = [m for m in caplog.messages if "median short side differs" in m]
    assert len(warnings) == 1 and "rings" in warnings[0] and "dots" not in warnings[0]
    folder = clf.save(tmp_path / "model")
    training_median = load_bundle(folder).config["sizes"]["short_side"]["median"]
    assert training_median >= 300
    small = tmp_path / "small"
    for path in (sizes_tree / RINGS).rglob("*.jpg"):
        target = small / STYLE_NAMES[1] / path.relative_to(sizes_tree / RINGS)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, target)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="artstyle"):
        evaluation = StyleClassifier.load(folder, cache_dir=tmp_path / "cache", show_progress=False).evaluate(small)
    assert any("the size of the training images" in m for m in caplog.messages)
    assert evaluation.metrics["size_shift"] < 0.5
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="artstyle"):
        same = StyleClassifier.load(folder, cache_dir=tmp_path / "cache", show_progress=False).evaluate(sizes_tree)
    assert same.metrics["size_shift"] is None and not any("the size of the training" in m for m in caplog.messages)


# ---------------------------------------------------------------------- several roots
def test_several_roots_train_like_one_symlinked_tree(tmp_path):
    museum, web = tmp_path / "museum", tmp_path / "web"
    for s, style in enumerate(STYLE_NAMES[:3]):
        for a in range(3):
            for n in range(3):
                _write(museum / style / f"Painter {a}{s}", style, a, n, seed=4000 * s + 100 * a + n)
                _write(web / style / f"Web {a}{s}", style, a + 3, n, seed=7000 * s + 100 * a + n, size=(80, 64))
    _write(web / STYLE_NAMES[0] / "Painter 00", STYLE_NAMES[0], 0, 9, seed=99)  # one artist in both folders
    merged = tmp_path / "merged"
    for root in (museum, web):
        for path in root.rglob("*.jpg"):
            link = merged / path.relative_to(root)
            link.parent.mkdir(parents=True, exist_ok=True)
            os.symlink(path, link)
    # balance "class": sources do not weigh in, so the two must train the same head
    params = dict(**FAST, split="artist", test_fraction=0.2, cache_dir=tmp_path / "cache", show_progress=False,
                  balance="class")
    both = StyleClassifier(**params).fit([museum, web])
    linked = StyleClassifier(**params).fit(merged)
    rows = parse_splits_csv(both.splits_csv_)
    assert {r["source"] for r in rows} == {"museum", "web"}
    assert [r["source"] for r in rows if r["artist"] == "Painter 00"].count("web") == 1
    drop = lambda text: [{k: v for k, v in r.items() if k != "source"} for r in parse_splits_csv(text)]  # noqa: E731
    assert drop(both.splits_csv_) == drop(linked.splits_csv_)
    assert np.allclose(both.head_.weight, linked.head_.weight, atol=1e-6)
    assert both.config_["dataset"]["sources"] == {"museum": 27, "web": 28}
    assert set(both.config_["sizes"]["per_source"]) == {"museum", "web"}
    sizes = check_dataset([museum, web], show_progress=False).to_dict()["sizes"]
    assert set(sizes["flagged_sources"]) == {"museum", "web"}
    assert StyleClassifier.load(both.save(tmp_path / "model"), cache_dir=tmp_path / "cache",
                                show_progress=False).evaluate([museum, web]).metrics["n_images"] > 0


def test_the_same_path_in_two_roots_keeps_both_images(tmp_path):
    for i, root in enumerate(("a", "b")):
        _write(tmp_path / root / STYLE_NAMES[0] / "Painter", STYLE_NAMES[0], 0, 0, seed=i)
    dataset = scan_dataset([tmp_path / "a", tmp_path / "b"], show_progress=False)
    paths = sorted(r.path for r in dataset.records)
    assert paths == [f"{STYLE_NAMES[0]}/Painter/0.jpg", f"b/{STYLE_NAMES[0]}/Painter/0.jpg"]
    assert {dataset.abspath(r) for r in dataset.records} == {tmp_path / "a" / paths[0], tmp_path / "b" / paths[0]}


def test_cli_trains_and_checks_several_folders(tmp_path):
    from synth import FAST_CLI
    from typer.testing import CliRunner

    from artstyle.apps.cli import app

    def folders(where: Path, new: int = 0) -> list[str]:
        roots = []
        for name, size in (("museum", (400, 320)), ("web", (120, 96))):
            for s, style in enumerate(STYLE_NAMES[:2]):
                for a in range(3):
                    for n in range(3):
                        _write(where / name / style / f"{name} {a + 10 * new}{s}", style, a, n,
                               seed=sum(map(ord, name)) % 999 + 50 * s + 9 * a + n + 5003 * new, size=size)
            roots.append(str(where / name))
        return roots

    roots = folders(tmp_path)
    runner = CliRunner()
    done = runner.invoke(app, ["train", *roots, "--out", str(tmp_path / "model"), "--cache-dir", str(tmp_path / "cache"),
                               *FAST_CLI])
    assert done.exit_code == 0, done.output
    assert done.output.count("median short side differs") == 1 and "source web" in done.output
    new = folders(tmp_path / "new", new=1)  # other paintings by other artists: all held out
    scored = runner.invoke(app, ["evaluate", str(tmp_path / "model"), *new, "--cache-dir", str(tmp_path / "cache")],
                           terminal_width=160)
    assert scored.exit_code == 0, scored.output
    assert "By size band and source" in scored.output  # the headline's parts: each source and size band
    assert "source: museum" in scored.output and "source: web" in scored.output and "size: full size" in scored.output
    rows = parse_splits_csv((tmp_path / "model" / "splits.csv").read_text())
    assert {r["source"] for r in rows} == {"museum", "web"} and len(rows) == 36
    checked = runner.invoke(app, ["check", *roots, "--format", "json"])
    assert checked.exit_code == 0, checked.output
    report = json.loads(checked.stdout)
    assert report["n_images"] == 36 and set(report["sizes"]["flagged_sources"]) == {"museum", "web"}

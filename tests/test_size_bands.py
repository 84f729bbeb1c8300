"""Size bands: a broad source of small copies must not take the full-size recall of the
movements it lacks, and small pictures keep what the broad source taught."""

from __future__ import annotations

import re

import numpy as np
import pytest

from artstyle import normalize_label
from artstyle.model.head import ArtstyleError, head_from_tensors, softmax
from artstyle.model.size_bands import SizeBandHead, fit_size_bands, small_pictures
from artstyle.model.training import head_rows, train_head

DIM = 6
TILES = (DIM, 2 * DIM)
NARROW = (2, 3)  # the movements the web source lacks


def _vectors(g: np.ndarray, full_size: bool, rng) -> np.ndarray:
    """The `sized` layout: global view, tile mean, tile max. A small picture's tiles are its
    global view; a full-size one's are four crops close to it (so little that a linear head
    cannot tell the bands apart by itself: the correction per band is what can)."""
    if not full_size:
        return np.concatenate([g, g, g], axis=1)
    tiles = g[:, None, :] + rng.normal(0, 0.1, (len(g), 4, DIM))
    return np.concatenate([g, tiles.mean(1), tiles.max(1)], axis=1)


class _Variants:  # what `head_rows` reads of `SizeVariants.plan(...).select(...)`
    def __init__(self, parents: np.ndarray):
        self.parents, self.weight, self.short_sides = parents, 0.5, [128] * len(parents)


def _world(seed: int) -> dict:
    """A museum holds four movements at full size (three painters each, every painting also
    seen small); a web source holds movements 0 and 1 as small copies by 40 prolific painters
    who file under them pictures that look like movements 2 and 3 (as WikiArt's style
    folders do). Test painters are new: full-size ones of every movement, small web ones."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 2.5, size=(4, DIM))
    x, variant_x, y, sources, artists, parents = [], [], [], [], [], []

    def painter(movement: int, centre: np.ndarray, n: int, source: str) -> None:
        g = centre + rng.normal(0, 1.0, DIM) + rng.normal(0, 1.0, (n, DIM))
        x.extend(_vectors(g, source == "museum", rng))
        if source == "museum":
            parents.extend(range(len(y), len(y) + n))
            variant_x.extend(_vectors(g + rng.normal(0, 0.3, g.shape), False, rng))
        y.extend([movement] * n)
        sources.extend([source] * n)
        artists.extend([f"{source}{len(set(artists))}"] * n)

    def web_centre(a: int) -> np.ndarray:
        return centres[2 + a % 2]

    for movement in range(4):
        for _ in range(3):
            painter(movement, centres[movement], 8, "museum")
    for a in range(40):
        painter(a % 2, web_centre(a), 12, "web")
    order = {name: i for i, name in enumerate(dict.fromkeys(artists))}
    test = np.concatenate([c + rng.normal(0, 1.0, (6, 1, DIM)) + rng.normal(0, 1.0, (6, 6, DIM)) for c in centres])
    web = np.concatenate([web_centre(a) + rng.normal(0, 1.0, (1, DIM)) + rng.normal(0, 1.0, (12, DIM)) for a in range(12)])
    return {"x": np.array(x, np.float32), "y": np.array(y), "folds": np.array([order[a] % 3 for a in artists]),
            "sources": sources, "artists": artists, "variant_x": np.array(variant_x, np.float32),
            "parents": np.array(parents), "test_full": _vectors(test.reshape(-1, DIM), True, rng).astype(np.float32),
            "test_full_y": np.repeat(np.arange(4), 36), "test_small": _vectors(web, False, rng).astype(np.float32),
            "test_small_y": np.repeat(np.arange(12) % 2, 12)}


def _trained(w: dict, only: str | None = None):
    keep = np.ones(len(w["y"]), bool) if only is None else np.array(w["sources"]) == only
    rows = head_rows(w["x"][keep], w["y"][keep], w["folds"][keep], np.array(w["sources"])[keep],
                     np.array(w["artists"])[keep], "breadth", variants=_Variants(np.flatnonzero(keep[w["parents"]])),
                     variant_x=w["variant_x"][keep[w["parents"]]])
    trained = train_head(rows.x, rows.y, 4, rows.folds, kinds=("logreg",), weighting=rows.weighting, scored=rows.scored)
    return trained, rows


def _recall(head, features: np.ndarray, y: np.ndarray, classes) -> float:
    predicted = head.predict_proba(features).argmax(1)
    return float(np.mean([np.mean(predicted[y == c] == c) for c in classes]))


def test_small_pictures_are_told_apart_by_their_own_tiles():
    rng = np.random.default_rng(0)
    g = rng.normal(size=(5, DIM))
    assert small_pictures(_vectors(g, False, rng), TILES).all()
    assert not small_pictures(_vectors(g, True, rng), TILES).any()


def test_size_bands_give_back_full_size_recall_of_the_movements_the_broad_source_lacks():
    """Measured over these five worlds: recall of movements 2 and 3 at full size lost by
    training with the web source 0.33, regained by the correction 0.16 (least 0.00; it is
    kept in four worlds and rejected, regaining nothing, in one); small copies gain 0.41.
    Over twenty worlds: regained 0.19 on average, kept in 19, 0.10 at least where kept."""
    lost, regained, small_same, small_gain = [], [], [], []
    for seed in range(5):
        w = _world(seed)
        trained, rows = _trained(w)
        fitted = fit_size_bands(trained, rows, TILES, list("abcd"))
        bands = fitted.head
        chosen = fitted.info["size_bands"]["full_size_bias_macro_f1"]
        assert (fitted.info["size_bands"]["full_size_bias"] is not None) == (chosen["with"] > chosen["without"])
        museum_only = _trained(w, only="museum")[0].head
        assert isinstance(bands, SizeBandHead) and not bands.band_bias[0].any()
        full = [_recall(h, w["test_full"], w["test_full_y"], NARROW) for h in (museum_only, trained.head, bands)]
        lost.append(full[0] - full[1])
        regained.append(full[2] - full[1])
        small = [h.predict_proba(w["test_small"]).argmax(1) for h in (museum_only, trained.head, bands)]
        small_same.append(np.array_equal(small[1], small[2]))
        small_gain.append(np.mean(small[1] == w["test_small_y"]) - np.mean(small[0] == w["test_small_y"]))
    assert np.mean(lost) >= 0.05, lost  # today's balancing loses them at full size...
    assert np.mean(regained) >= 0.08 and min(regained) >= 0, regained  # ...the full-size correction gives much back
    assert all(small_same)  # small copies: the head's own answers, what the web source taught
    assert np.mean(small_gain) >= 0.2, small_gain


@pytest.mark.torch
def test_size_band_tensors_round_trip_and_trace_with_torch():
    torch = pytest.importorskip("torch")
    w = _world(0)
    trained, rows = _trained(w)
    head = fit_size_bands(trained, rows, TILES, list("abcd")).head
    tensors = {k: np.asarray(v) for k, v in head.tensors().items()}
    again = head_from_tensors("size_bands", tensors, head.temperature)
    both = np.concatenate([w["test_full"], w["test_small"]])
    np.testing.assert_allclose(again.predict_proba(both), head.predict_proba(both), atol=1e-6)
    assert (small_pictures(both, head.tiles) == np.r_[np.zeros(len(w["test_full"])), np.ones(len(w["test_small"]))]).all()
    as_torch = head.map_arrays(lambda a: torch.from_numpy(np.asarray(a, np.float32)))
    traced = softmax(as_torch.raw_scores(torch.from_numpy(both)).numpy() / head.temperature)
    np.testing.assert_allclose(traced, head.predict_proba(both), atol=1e-5)
    del tensors["band_bias"]
    with pytest.raises(ArtstyleError, match="size band"):
        head_from_tensors("size_bands", tensors, 1.0)


def test_one_size_band_keeps_the_plain_head():
    w = _world(1)
    trained, rows = _trained(w, only="museum")  # full size, and variants that are never scored
    assert fit_size_bands(trained, rows, TILES, list("abcd")) is trained
    assert fit_size_bands(trained, rows, None, list("abcd")) is trained


def _two_folders(root, new: int = 0):
    """A museum of full-size paintings (tiles) and a web folder of small copies, three
    movements, 60 paintings each; `new` > 0 paints other pictures by other artists."""
    from synth import STYLES, paint

    for s, style in enumerate(list(STYLES)[:3]):
        for a in range(4):
            for n in range(5):
                for name, size in (("museum", (500, 470)), ("web", (140, 120))):
                    folder = root / name / style / f"{name} {a + 10 * new}{s}"
                    folder.mkdir(parents=True, exist_ok=True)
                    paint(style, a + (4 if name == "web" else 0), seed=1000 * s + 100 * a + n + (50 if name == "web" else 0)
                          + 7919 * new, size=size).save(folder / f"{n}.jpg", quality=90)
    return root / "museum", root / "web"


@pytest.mark.torch  # its ONNX export traces the head with torch
def test_a_model_trained_on_full_size_and_small_folders_answers_each_band_and_says_so(tmp_path):
    ort = pytest.importorskip("onnxruntime")
    from synth import STYLES, paint

    from artstyle import StyleClassifier
    from artstyle.apps.cli import app
    from artstyle.model.export import export_onnx

    museum, web = _two_folders(tmp_path)
    clf = StyleClassifier(features="sized", head="logreg", negatives=0, split="artist", test_fraction=0,
                          size_variants=None, cache_dir=tmp_path / "cache", show_progress=False).fit([museum, web])
    assert isinstance(clf.head_, SizeBandHead)
    bands = clf.config_["head"]["size_bands"]
    assert bands["held_out_paintings"] == {"small": 60, "full size": 60}
    assert set(clf.metrics_["by_source"]) == {"museum", "web"} and len(clf.metrics_["by_size"]) == 2
    folder = clf.save(tmp_path / "model")
    images = [paint(s, artist=9, seed=77 + i, size=size) for i, s in enumerate(list(STYLES)[:3])
              for size in ((520, 480), (150, 130))]
    loaded = StyleClassifier.load(folder, cache_dir=tmp_path / "cache", show_progress=False)
    np.testing.assert_allclose(loaded.predict_proba(images), clf.predict_proba(images), atol=1e-6)
    assert small_pictures(loaded.extract(images).features, loaded.head_.tiles).tolist() == [False, True] * 3
    session = ort.InferenceSession(str(export_onnx(clf, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    prep = clf.feature_extractors[0].preprocessing
    (probabilities,) = session.run(None, {"views": np.stack([prep(img) for img in images])})
    np.testing.assert_allclose(probabilities, clf.predict_proba(images), atol=1e-4)
    from artstyle.apps.report import write_report

    new_museum, new_web = _two_folders(tmp_path / "new", new=1)  # held out: paintings the model never saw
    report = write_report(loaded.evaluate([new_museum, new_web]), tmp_path / "report.html").read_text()
    assert "By size band and source" in report
    for name in ("source: museum", "source: web", "size: full size", "size: small"):  # each with its interval and n
        assert re.search(name + r"[^<]*</td><td>60</td><td>[\d.]+ % \([\d.]+-[\d.]+ %, n = 60\)", report), name
    # a movement with no images in the folder scored is said to be untested, not a row of zeros
    import shutil

    partial = tmp_path / "partial"
    shutil.copytree(new_museum, partial)
    missing = sorted(p for p in partial.iterdir() if p.is_dir())[0]
    shutil.rmtree(missing)
    label = normalize_label(missing.name)
    report = write_report(loaded.evaluate(partial), tmp_path / "partial.html").read_text()
    row = re.search(rf"<tr class=untested><td>{re.escape(label)}</td>(.*?)</tr>", report)
    assert row and "not tested" in row.group(1) and "0.00" not in row.group(1)
    # info names both folders and prints the split in words; the card explains the bands
    from typer.testing import CliRunner

    shown = CliRunner().invoke(app, ["info", str(folder)], terminal_width=200)
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.replace("│", " ").split())  # cells read across their wrapped lines
    assert "120 images by 24 artists from museum (60) and web (60)" in text
    assert "by artist (seed 0): 120 train" in text and "None" not in text and "{" not in text
    card = CliRunner().invoke(app, ["info", str(folder), "--format", "markdown"]).output
    assert "Size bands: each size band has its own temperature" in card
    assert "| source | top-1 (95 % interval, n) |" in card

"""Heads, calibration, abstention and the painting detector do what they promise."""

import json
import shutil

import numpy as np
import pytest
from synth import STYLES, non_paintings_for_tests, paint

from artstyle import StyleClassifier
from artstyle.data.dataset import ImageRecord
from artstyle.data.splits import make_folds
from artstyle.errors import ArtstyleError
from artstyle.model.calibration import Abstention, fit_temperature
from artstyle.model.head import HEAD_KINDS, head_from_tensors, softmax
from artstyle.model.head_fitting import HeadFitter


def _blobs(noise_seed, n_per_class=40, n_classes=4, dim=32):
    """Gaussian classes around fixed centres; `noise_seed` draws a fresh sample."""
    centres = np.random.default_rng(0).normal(0, 1.0, size=(n_classes, dim))
    y = np.repeat(np.arange(n_classes), n_per_class)
    noise = np.random.default_rng(noise_seed).normal(size=(len(y), dim))
    return (centres[y] + noise).astype(np.float32), y


@pytest.mark.parametrize("kind", HEAD_KINDS)
def test_every_head_kind_learns_and_round_trips(kind):
    x, y = _blobs(noise_seed=1)
    x_new, y_new = _blobs(noise_seed=2)
    head = HeadFitter(kind, x, y, 4).fit(1e-2)
    assert (head.predict_proba(x_new).argmax(axis=1) == y_new).mean() >= 0.9
    again = head_from_tensors(head.kind, head.tensors(), head.temperature)
    np.testing.assert_allclose(again.predict_proba(x_new), head.predict_proba(x_new), atol=1e-6)


def test_a_head_type_registered_elsewhere_is_read_back_and_bad_tensors_are_named():
    """`register_head` is the only list of saved types: a kind defined outside artstyle
    loads through `head_from_tensors` and is recognised by its tensors (as a size-band head
    recognises its base's type); unknown types, missing or misshapen tensors are one-line
    errors."""
    from dataclasses import dataclass

    from artstyle import Head, register_head
    from artstyle.model.head import _SAVED as saved
    from artstyle.model.head import kind_of

    @register_head
    @dataclass(kw_only=True)
    class Doubled(Head):
        doubled: np.ndarray  # (n_classes, dim)
        kind = "doubled-for-test"
        tensor_names = ("doubled",)

        @property
        def n_classes(self) -> int:
            return int(self.doubled.shape[0])

        def scores(self, z):
            return 2 * z @ self.doubled.T

        def weights(self):
            return {"doubled": self.doubled}

        def fits(self) -> bool:
            return self.doubled.shape[1:] == (self.dim,)

    try:
        rng = np.random.default_rng(0)
        head = Doubled(np.zeros(3, np.float32), np.ones(3, np.float32), 1.5, doubled=rng.normal(size=(2, 3)))
        x = rng.normal(size=(5, 3)).astype(np.float32)
        again = head_from_tensors("doubled-for-test", head.tensors(), 1.5)
        assert isinstance(again, Doubled) and kind_of(head.tensors()) == "doubled-for-test"
        np.testing.assert_allclose(again.predict_proba(x), head.predict_proba(x), atol=1e-6)
    finally:
        del saved["doubled-for-test"]
    linear = HeadFitter("logreg", *_blobs(noise_seed=1), 4).fit(1e-2)
    assert kind_of(linear.tensors()) == "linear"
    with pytest.raises(ArtstyleError, match="unknown head type 'doubled-for-test'"):
        head_from_tensors("doubled-for-test", linear.tensors(), 1.0)
    with pytest.raises(ArtstyleError, match=r"linear head tensors are incomplete \(no 'bias'\)"):
        head_from_tensors("linear", {k: v for k, v in linear.tensors().items() if k != "bias"}, 1.0)
    with pytest.raises(ArtstyleError, match="inconsistent shapes"):
        head_from_tensors("linear", {**linear.tensors(), "bias": np.zeros(7, np.float32)}, 1.0)


def test_temperature_undoes_overconfidence():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(4000, 5)) * 2
    y = np.array([rng.choice(5, p=p) for p in softmax(logits)])  # labels drawn from the true probabilities
    assert fit_temperature(logits * 4, y) == pytest.approx(4, rel=0.15)


def _painters(rng, centres, n_artists, per_artist, tag):
    """Each artist paints a class with a hand of their own (an offset), so new artists
    are harder than new paintings by known ones."""
    x, y, artists = [], [], []
    for c, centre in enumerate(centres):
        for a in range(n_artists):
            hand = rng.normal(0, 1.5, centre.shape)
            x.append(centre + hand + rng.normal(0, 0.8, (per_artist, len(centre))))
            y += [c] * per_artist
            artists += [f"{tag}{c}-{a}"] * per_artist
    return np.concatenate(x).astype(np.float32), np.array(y), artists


@pytest.mark.parametrize("seed", [0, 1])
def test_calibration_on_artist_disjoint_folds_holds_for_new_artists(seed):
    """The temperature fitted on artist-disjoint folds keeps the calibration error on
    paintings by new artists within 0.05; fitted on folds that share artists it does not."""
    from artstyle.model.metrics import expected_calibration_error
    from artstyle.model.training import train_head

    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 1, (5, 24))
    x, y, artists = _painters(rng, centres, 8, 8, "train")
    x_new, y_new, _ = _painters(rng, centres, 40, 5, "new")
    records = [ImageRecord(f"{a}/{i}.jpg", str(c), a, f"h{i}") for i, (c, a) in enumerate(zip(y, artists))]
    ece = {}
    for mode in ("artist", "stratified"):
        trained = train_head(x, y, 5, make_folds(records, 5, mode, seed=0), kinds=("logreg",))
        ece[mode] = expected_calibration_error(trained.head.predict_proba(x_new), y_new)
        if mode == "artist":
            held = trained.info["held_out"]
            assert 0 < held["sure_share"] <= 1 and held["accuracy_when_sure"] >= held["accuracy"]
    assert ece["artist"] <= 0.05 < ece["stratified"], ece


def test_uncertain_threshold_and_mixed_margin_are_chosen_on_held_out_data():
    rng = np.random.default_rng(1)
    n = 2000
    top = rng.uniform(0.25, 0.95, n)
    second = (1 - top) * rng.uniform(0.5, 0.95, n)
    proba = np.stack([top, second, 1 - top - second], axis=1)
    u = rng.random(n)
    y = np.where(u < top, 0, np.where(u < top + second, 1, 2))  # calibrated by construction
    abstention = Abstention.fit(proba, y)
    assert 0.4 <= abstention.uncertain_below <= 0.6  # Chow's rule: 1 - cost of abstaining
    assert abstention.mixed_margin > 0.1  # close seconds are often right: worth showing
    uncertain, mixed = abstention.flags(np.array([[0.9, 0.05, 0.05], [0.36, 0.34, 0.3]]))
    assert uncertain.tolist() == [False, True] and mixed.tolist() == [False, True]

    ranked = np.argsort(-proba, axis=1)
    never_second = np.where(u < proba.max(axis=1), ranked[:, 0], ranked[:, 2])  # runner-up never right: never show it
    assert Abstention.fit(proba, never_second).mixed_margin == 0.0


def test_folds_keep_artists_together_and_hold_out_only_classes_with_two_artists():
    records = [ImageRecord(f"{c}/{a}/{i}.jpg", c, a, f"{c}{a}{i}") for c in "ab" for a in ("p", "q", "r") for i in range(4)]
    records += [ImageRecord(f"solo/x/{i}.jpg", "solo", "x", f"solo{i}") for i in range(5)]
    folds = make_folds(records, 3, "artist", seed=0)
    by_artist = {}
    for r, f in zip(records, folds):
        by_artist.setdefault((r.label, r.artist), set()).add(int(f))
    assert all(len(s) == 1 for s in by_artist.values())
    assert set(folds[-5:]) == {-1}  # one artist: always trains, never scored
    for fold in range(3):  # each training side keeps every class
        assert {r.label for r, f in zip(records, folds) if f != fold} == {"a", "b", "solo"}


def test_non_paintings_are_flagged_and_paintings_pass(trained_model):
    clf, _ = trained_model
    others = non_paintings_for_tests()  # drawn with matplotlib: not the generator it trained on
    flagged = ~clf.is_painting([img for _, img in others])
    assert flagged.mean() >= 0.95, [kind for (kind, _), f in zip(others, flagged) if not f]
    chart = clf.predict_top_k([others[0][1]])[0]
    assert chart.is_painting is False and chart.not_painting_kind == "chart/diagram"
    assert chart.summary == "not a painting (chart/diagram)"


def test_new_paintings_pass_the_painting_detector(trained_model):
    """New pictures by the training artists (not JPEG-compressed, a size never seen) are
    paintings: the flag rate stays near the 3 % the thresholds aim at."""
    clf, _ = trained_model
    new = [paint(s, artist=a, seed=300 + 10 * i + a) for i in range(4) for s in list(STYLES)[:4] for a in range(4)]
    assert (~clf.is_painting(new)).mean() <= 0.1


def test_version_1_model_folders_still_load(paintings, tmp_path, cache_dir):
    """A version-1 folder (one backbone, global view, linear head) answers as the model it
    was written from. The model is trained here with a linear head: the session model's
    head is chosen among all kinds, and version 1 had only linear ones."""
    folder = StyleClassifier(features="global", head="logreg", split="stratified", negatives=40, cache_dir=cache_dir,
                             show_progress=False).fit(paintings).save(tmp_path / "model")
    clf = StyleClassifier.load(folder, cache_dir=cache_dir, show_progress=False)
    assert clf.head_.kind == "linear"
    old = shutil.copytree(folder, tmp_path / "old")
    config = json.loads((old / "config.json").read_text())
    entry = config["features"]["backbones"][0]
    v1 = {k: v for k, v in config.items() if k not in ("features", "abstention", "painting_detector")}
    v1.update(format_version=1, preprocessing={k: v for k, v in entry["preprocessing"].items() if k != "grid"},
              backbone={"name": entry["name"], "weights": None, "weights_id": entry["weights_id"], "feature_dim": entry["dim"]})
    v1["head"] = {"alpha": config["head"]["alpha"]}
    (old / "config.json").write_text(json.dumps(v1))
    loaded = StyleClassifier.load(old, cache_dir=cache_dir, show_progress=False)
    images = [paint(s, 5, seed=40 + i) for i, s in enumerate(list(STYLES)[:4])]
    np.testing.assert_allclose(loaded.predict_proba(images), clf.predict_proba(images), atol=1e-6)
    assert all(p.is_painting and not p.uncertain for p in loaded.predict_top_k(images))

"""Zero-shot movements from text: label parsing, prompt ensembles, open_clip's tokenizer
(it ships in the wheel), a tiny image+text model whose embeddings make the right answer
known, and the CLI and API on CLIP's real architecture with random weights."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from synth import NEEDS_TORCH
from test_cli import run

torch = pytest.importorskip("torch", reason=NEEDS_TORCH)  # every test here needs it

from artstyle import ArtstyleError
from artstyle.data.labels import PANDORA_MOVEMENTS
from artstyle.features import backbones, family_open_clip
from artstyle.features.backbone import Backbone, BackboneInfo
from artstyle.features.preprocess import Preprocessing
from artstyle.features.random_weights import random_checkpoint
from artstyle.model.prompts import TEMPLATES, ensemble, parse_labels, prompts
from artstyle.model.text_detector import NOT_PAINTING_PROMPTS, PAINTING_PROMPTS, TextDetector, best_threshold, calibrate
from artstyle.model.zero_shot import zero_shot_classifier

open_clip = pytest.importorskip("open_clip", reason="the torch extra (open_clip) is not installed")



def test_labels_are_parsed_as_written_each_once():
    assert parse_labels(" ukiyo-e, Art Nouveau,,  art nouveau , de stijl") == ["ukiyo-e", "Art Nouveau", "de stijl"]
    assert parse_labels(None) == list(PANDORA_MOVEMENTS) and len(PANDORA_MOVEMENTS) == 18
    with pytest.raises(ArtstyleError, match="at least two movements"):
        parse_labels("cubism")


def test_a_prompt_ensemble_is_the_renormalised_mean_of_its_prompts():
    unit = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, -1]], np.float32)
    rows = ensemble(unit, [2, 1, 1])
    np.testing.assert_allclose(rows, [[2 ** -0.5, 2 ** -0.5, 0], [0, 0, 1], [0, 0, -1]], atol=1e-6)
    assert prompts("fauvism")[1] == "a painting of the fauvism movement." and len(prompts("fauvism")) == len(TEMPLATES)


def test_every_prompt_reads_grammatically_for_every_movement():
    """The name stands as a noun in every template: no "a impressionism painting", no "a early
    renaissance painting", for the 18 movements or a user's own labels."""
    import re

    for label in [*PANDORA_MOVEMENTS, "ukiyo-e", "art nouveau", "Orphism"]:
        for text in prompts(label):
            assert text.count(label) == 1 and not re.search(r"\ba [aeiouAEIOU]", text), text
            assert not re.search(rf"\ban? {re.escape(label)} (painting|artwork)", text), text  # the name is no adjective


def test_open_clips_tokenizer_and_text_tower_run_offline(tmp_path):
    tokens = open_clip.get_tokenizer("ViT-B-32")(prompts("naive art"))
    assert tokens.shape == (len(TEMPLATES), 77) and (tokens.argmax(1) > 3).all()  # the end token after the words
    weights = random_checkpoint("clip-vit-b32", tmp_path / "open_clip_model.safetensors")
    tower = family_open_clip.text_tower(backbones.get_info("clip-vit-b32"), weights)
    embedded = tower.encode(prompts("naive art") + prompts("pop art"))
    assert embedded.shape == (2 * len(TEMPLATES), 512)
    np.testing.assert_allclose(np.linalg.norm(embedded, axis=1), 1.0, atol=1e-5)
    assert tower.logit_scale == pytest.approx(1 / 0.07, rel=1e-3)  # CLIP's initial temperature


def test_siglips_tokenizer_installs_with_the_extra_and_offline_names_the_files_to_fetch(monkeypatch):
    """transformers and sentencepiece come with the torch extra; the vocabulary itself is
    the hub's, fetched on the first online run: offline, one line says so."""
    import importlib.util

    assert importlib.util.find_spec("transformers") and importlib.util.find_spec("sentencepiece")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")  # no cached copy from an earlier online run
    tower = family_open_clip.TextTower.__new__(family_open_clip.TextTower)  # the tokenizer comes before the weights
    tower.arch = "ViT-B-16-SigLIP"
    with pytest.raises(ArtstyleError, match=r"ViT-B-16-SigLIP: its tokenizer files could not be read or fetched "
                                            r"\(\w+\); run once online to cache them \(hub repository timm/ViT-B-16-SigLIP\)"):
        tower.encode(["a painting of the fauvism movement."])


class _ColourNet(torch.nn.Module):
    """An image tower whose embedding is the mean colour and the contrast of the picture."""

    num_features = 4

    def forward_features(self, x):
        return x

    def forward_head(self, x, pre_logits=True):
        return torch.cat([x.mean((2, 3)), x.std((1, 2, 3))[:, None] - 1.0], dim=1)


class _WordTower:
    """A text tower that reads colour words: the answer is known."""

    logit_scale, logit_bias = 50.0, 0.0

    def encode(self, texts):
        rows = []
        for text in texts:
            if "redism" in text:
                row = [1, 0, 0, 0]
            elif "greenism" in text:
                row = [0, 1, 0, 0]
            elif "blueism" in text:
                row = [0, 0, 1, 0]
            elif any(text in group for group in PAINTING_PROMPTS.values()):  # paintings, prints, icons, ...
                row = [0, 0, 0, 1]
            elif text in NOT_PAINTING_PROMPTS["photo"]:
                row = [0, 0, 0, -1]
            else:  # charts, documents
                row = [1, 1, 1, -1]
            rows.append(np.array(row, np.float32) / np.linalg.norm(row))
        return np.stack(rows)


@pytest.fixture
def colour_backbone(monkeypatch):
    name = "test-colour-text"
    info = BackboneInfo(name, "colour tower with a word text tower", 32, 4, True, family="open_clip", text=True)
    preprocessing = Preprocessing(32, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    monkeypatch.setitem(backbones._REGISTRY, name,
                        (info, lambda weights: Backbone(name, preprocessing, "test:colour", model=_ColourNet())))
    monkeypatch.setattr(family_open_clip, "text_tower", lambda info, weights: _WordTower())
    return name


def _textured(colour: tuple[int, int, int], seed: int) -> Image.Image:
    """A picture of `colour` with strong light and dark marks (contrast: a painting here)."""
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour, np.float32) * rng.choice([0.2, 1.0], size=(48, 64, 1)), 0, 255)
    return Image.fromarray(pixels.astype(np.uint8))


def test_zero_shot_names_the_movement_whose_text_is_closest(colour_backbone, tmp_path):
    clf = zero_shot_classifier(colour_backbone, ["redism", "greenism", "blueism"], cache_dir=False, show_progress=False)
    images = [_textured(c, s) for s, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)] * 2)]
    assert clf.predict(images) == ["redism", "greenism", "blueism"] * 2
    answers = clf.predict_top_k(images + [Image.new("RGB", (64, 48), (128, 128, 128))], k=2)
    assert all(a.is_painting for a in answers[:6])
    assert answers[0].predictions[0][1] > 0.9 and not answers[0].uncertain  # far closer to its own text
    flat = answers[6]
    assert not flat.is_painting and flat.not_painting_kind == "photo"  # no contrast: closest to the photo prompts
    assert sum(p for _, p in clf.predict_top_k(images[:1], k=3)[0].predictions) == pytest.approx(1.0, abs=1e-5)
    default = zero_shot_classifier(colour_backbone, cache_dir=False, show_progress=False)
    assert list(default.classes_) == list(PANDORA_MOVEMENTS)  # no labels: the 18 movements


def test_the_threshold_is_the_cut_that_best_separates_paintings_from_the_rest():
    # separable: every cut between them is right; the uncalibrated 0.5 stays when it is one of them
    assert best_threshold(np.array([0.1, 0.2, 0.3]), np.array([0.6, 0.9])) == 0.5
    # a backbone that finds everything photo-like: the cut moves up to where paintings end
    assert best_threshold(np.array([0.6, 0.7, 0.72]), np.array([0.8, 0.95])) == pytest.approx(0.76)
    # overlap: the cut that gets most of each side right (one painting flagged, one photo passed)
    cut = best_threshold(np.array([0.1, 0.2, 0.3, 0.9]), np.array([0.25, 0.7, 0.8, 0.85]))
    assert 0.3 < cut < 0.7


def test_the_text_detector_passes_prints_and_icons_and_names_what_it_flags():
    """One softmax over every kind: a picture that reads as a woodblock print or an icon is
    painting-like, one that reads as a chart is not and is named so; the threshold and the
    tensors survive the folder's format."""
    kinds = len(PAINTING_PROMPTS) + len(NOT_PAINTING_PROMPTS)
    detector = TextDetector(np.eye(kinds, dtype=np.float32), 100.0, 0.0)
    names = [*PAINTING_PROMPTS, *NOT_PAINTING_PROMPTS]
    as_kind = np.eye(kinds, dtype=np.float32)[[names.index(n) for n in ("print", "icon", "mosaic", "chart/diagram",
                                                                         "photo")]]
    assert detector.is_painting(as_kind).tolist() == [True, True, True, False, False]
    assert detector.kinds(as_kind)[3:] == ["chart/diagram", "photo"]
    np.testing.assert_allclose(detector.scores(as_kind), [0, 0, 0, 1, 1], atol=1e-6)
    between = (as_kind[0] + as_kind[4])[None]  # as much a print as a photo
    assert detector.scores(between)[0] == pytest.approx(0.5, abs=1e-6)

    paintings = np.eye(kinds, dtype=np.float32)[[0, 1, 2]] + 0.3 * np.eye(kinds, dtype=np.float32)[names.index("photo")]
    calibrated = calibrate(detector, paintings, as_kind[3:], "three paintings, two others")
    assert calibrated.fitted_on == {"basis": "three paintings, two others", "paintings": 3, "non_paintings": 2,
                                    "paintings_flagged": 0.0, "non_paintings_flagged": 1.0}
    again = TextDetector.from_saved(calibrated.tensors(), calibrated.config())
    assert again.threshold == calibrated.threshold and again.fitted_on == calibrated.fitted_on
    np.testing.assert_allclose(again.scores(as_kind), calibrated.scores(as_kind))


def test_a_zero_shot_model_is_a_model_folder(colour_backbone, tmp_path):
    """Saved and loaded, it answers as it did, with its calibrated detector; the folder says
    it was never trained (cosine head, empty split, no held-out scores)."""
    from artstyle import StyleClassifier
    from artstyle.data.splits import parse_splits_csv

    clf = zero_shot_classifier(colour_backbone, ["redism", "greenism", "blueism"], cache_dir=False, show_progress=False)
    fitted = clf.painting_detector_.fitted_on
    assert fitted["paintings"] == 40 and fitted["non_paintings"] == 140  # generated brushwork; photos, charts
    folder = clf.save(tmp_path / "zero-shot")
    config = json.loads((folder / "config.json").read_text())
    assert config["head"]["type"] == "cosine" and config["painting_detector"]["threshold"] == clf.painting_detector_.threshold
    assert parse_splits_csv((folder / "splits.csv").read_text()) == []
    loaded = StyleClassifier.load(folder, cache_dir=False, show_progress=False)
    images = [_textured(c, s) for s, c in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255)])]
    images.append(Image.new("RGB", (64, 48), (128, 128, 128)))
    np.testing.assert_allclose(loaded.predict_proba(images), clf.predict_proba(images), atol=1e-5)
    answers = loaded.predict_top_k(images, k=1)
    assert [a.is_painting for a in answers] == [True, True, True, False] and answers[3].not_painting_kind == "photo"
    assert [a.predictions[0][0] for a in answers[:3]] == ["redism", "greenism", "blueism"]


def test_a_backbone_without_text_tower_is_refused_by_name():
    with pytest.raises(ArtstyleError, match="dinov2-vit-s14 has no text tower; zero-shot needs one of clip-vit-b32"):
        zero_shot_classifier("dinov2-vit-s14", weights=None)


def test_predict_and_serve_zero_shot_on_clips_architecture(tmp_path, capsys, monkeypatch):
    """Random weights: the answers mean nothing, the JSON and the API are those of a model.
    `artstyle zero-shot --out` writes a folder that predicts the same without torch or
    open_clip, and that info, evaluate and serve read."""
    from test_torch_free import _cli

    weights = random_checkpoint("clip-vit-b32", tmp_path / "open_clip_model.safetensors")
    image = tmp_path / "a.jpg"
    _textured((200, 120, 40), 3).resize((256, 192)).save(image)
    code, out, err = run(capsys, monkeypatch, "predict", "--zero-shot", "--backbone", "clip-vit-b32", "--weights",
                         weights, "--labels", "ukiyo-e, art nouveau, cubism", image, "--format", "json")
    assert code == 0, err
    (answer,) = json.loads(out)
    assert {p["label"] for p in answer["predictions"]} == {"ukiyo-e", "art nouveau", "cubism"}
    assert sum(p["probability"] for p in answer["predictions"]) == pytest.approx(1.0, abs=1e-4)
    assert set(answer) >= {"uncertain", "mixed", "is_painting", "not_painting_kind"}
    code, _, err = run(capsys, monkeypatch, "predict", "--model", tmp_path, "--zero-shot", "--backbone", "clip-vit-b32",
                       image)
    assert code != 0 and "--zero-shot needs no --model" in err

    model = tmp_path / "zero-shot"
    code, _, err = run(capsys, monkeypatch, "zero-shot", "--backbone", "clip-vit-b32", "--weights", weights, "--labels",
                       "ukiyo-e, art nouveau, cubism", "--out", model)
    assert code == 0 and "model saved to" in err, err
    code, printed, err, heavy = _cli("predict", "--model", model, image, "--format", "json", cache=tmp_path / "empty")
    assert code == 0 and heavy == [], err  # the folder's graph and tensors: no torch, no text tower
    (light,) = json.loads(printed)
    assert light["predictions"][0]["label"] == answer["predictions"][0]["label"]
    assert light["predictions"][0]["probability"] == pytest.approx(answer["predictions"][0]["probability"], abs=2e-3)
    assert light["is_painting"] == answer["is_painting"]
    code, out, err = run(capsys, monkeypatch, "info", model)
    assert code == 0 and "no paintings: movements named from text" in " ".join(out.split()), err
    code, out, err = run(capsys, monkeypatch, "info", model, "--format", "markdown")
    assert code == 0 and "No painting trained or measured it" in out, err
    cubism = tmp_path / "scored" / "cubism" / "somebody"
    cubism.mkdir(parents=True)
    for i in range(3):
        _textured((60 * i, 90, 200), 10 + i).save(cubism / f"{i}.png")
    code, out, err = run(capsys, monkeypatch, "evaluate", model, tmp_path / "scored", "--format", "json")
    assert code == 0 and json.loads(out)["n_images"] == 3, err

    from fastapi.testclient import TestClient

    from artstyle import StyleClassifier, create_app

    with TestClient(create_app(StyleClassifier.load(model, show_progress=False), model_name="clip zero-shot")) as client:
        info = client.get("/api/model").json()
        assert info["labels"] == ["ukiyo-e", "art nouveau", "cubism"] and info["head"] == "zero-shot"
        with open(image, "rb") as handle:
            (reply,) = client.post("/api/predict", files=[("files", ("a.jpg", handle, "image/jpeg"))]).json()
        assert len(reply["predictions"]) == 3 and reply["is_painting"] == answer["is_painting"]
    assert Path(weights).exists()


def test_a_text_prior_names_a_movement_its_few_paintings_could_not_teach(colour_backbone, tmp_path):
    """Two 'blueism' paintings that look like redism teach a head nothing of blue; the
    text knows the colour. The prior, weighed by each movement's paintings, names new blue
    paintings blueism and keeps red and green, survives the model folder and the ONNX
    export, and config.json says what it did to the held-out macro-F1."""
    from artstyle import StyleClassifier
    from artstyle.model.export import export_onnx

    images = ([_textured((255, 0, 0), s) for s in range(12)] + [_textured((0, 255, 0), 20 + s) for s in range(12)]
              + [_textured((255, 0, 0), 40), _textured((255, 0, 0), 41)])
    labels = ["redism"] * 12 + ["greenism"] * 12 + ["blueism"] * 2
    new = [_textured((0, 0, 255), 60 + s) for s in range(4)] + [_textured((255, 0, 0), 70), _textured((0, 255, 0), 71)]
    truth = ["blueism"] * 4 + ["redism", "greenism"]
    common = dict(head="logreg", negatives=0, test_fraction=0, size_variants=None, split="stratified", cache_dir=False,
                  show_progress=False)
    plain = StyleClassifier(colour_backbone, features="global", **common).fit(images, labels)
    assert np.mean(np.array(plain.predict(new)) == truth) < 1  # two red-looking paintings do not teach blue
    clf = StyleClassifier(colour_backbone, features="global", text_prior=True, **common).fit(images, labels)
    assert clf.predict(new) == truth
    record = clf.config_["head"]["text_prior"]
    assert record["mix"]["blueism"] == pytest.approx(0.8) and record["mix"]["redism"] == pytest.approx(0.4)
    assert set(record["held_out_macro_f1"]) == {"with", "without"}
    folder = clf.save(tmp_path / "model")
    loaded = StyleClassifier.load(folder, cache_dir=False, show_progress=False)
    np.testing.assert_allclose(loaded.predict_proba(new), clf.predict_proba(new), atol=1e-5)
    import onnxruntime

    session = onnxruntime.InferenceSession(str(export_onnx(clf, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    views = np.stack([clf.feature_extractors[0].preprocessing(img) for img in new])
    np.testing.assert_allclose(session.run(None, {"views": views})[0], clf.predict_proba(new), atol=1e-4)


def test_a_text_prior_needs_an_image_text_backbone():
    from artstyle import StyleClassifier

    with pytest.raises(ArtstyleError, match="--text-prior needs one image\\+text backbone"):
        StyleClassifier("efficientnet_lite0", text_prior=True).fit(["a.jpg", "b.jpg"], ["x", "y"])


def test_the_declared_open_clip_floor_has_what_the_backbone_calls():
    """family_open_clip runs the vision tower through `_embeds` and `_pool` (open_clip 2.32 on;
    2.31 lacks them): the installed release has them, and pyproject.toml asks for no older one."""
    import re
    from importlib.metadata import requires

    from open_clip.transformer import VisionTransformer

    assert callable(getattr(VisionTransformer, "_embeds", None)) and callable(getattr(VisionTransformer, "_pool", None))
    floor = next(re.search(r">=\s*([\d.]+)", r).group(1) for r in requires("artstyle") if r.startswith("open_clip_torch"))
    assert tuple(map(int, floor.split("."))) >= (2, 32)

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
from artstyle.features.weights_hub import random_checkpoint
from artstyle.model.zero_shot import (
    NOT_PAINTING_PROMPTS,
    PAINTING_PROMPTS,
    TEMPLATES,
    ensemble,
    parse_labels,
    prompts,
    zero_shot_classifier,
)

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
            elif text in PAINTING_PROMPTS:
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


def test_a_backbone_without_text_tower_is_refused_by_name():
    with pytest.raises(ArtstyleError, match="dinov2-vit-s14 has no text tower; zero-shot needs one of clip-vit-b32"):
        zero_shot_classifier("dinov2-vit-s14", weights=None)


def test_predict_and_serve_zero_shot_on_clips_architecture(tmp_path, capsys, monkeypatch):
    """Random weights: the answers mean nothing, the JSON and the API are those of a model."""
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

    from fastapi.testclient import TestClient

    from artstyle import create_app

    labels = ["ukiyo-e", "art nouveau", "cubism"]  # the command's: their text embeddings come from the cache
    clf = zero_shot_classifier("clip-vit-b32", labels, weights, cache_dir=False, show_progress=False)
    with TestClient(create_app(clf, model_name="clip zero-shot")) as client:
        model = client.get("/api/model").json()
        assert model["labels"] == labels and model["head"] == "zero-shot"
        with open(image, "rb") as handle:
            (reply,) = client.post("/api/predict", files=[("files", ("a.jpg", handle, "image/jpeg"))]).json()
        assert len(reply["predictions"]) == 3 and reply["is_painting"] in (True, False)
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

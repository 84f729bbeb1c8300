"""Feature recipes: views, pooling and texture statistics are what they claim to be."""

import numpy as np
import pytest
from PIL import Image

from artstyle.errors import ArtstyleError
from artstyle.features.backbones import load_backbone
from artstyle.features.extraction import FeatureExtractor
from artstyle.features.preprocess import Preprocessing
from artstyle.features.recipes import RECIPES, get_recipe, split_backbones


@pytest.fixture(scope="module")
def lite0():
    return load_backbone("efficientnet_lite0")


def _picture(width=500, height=300, seed=0):
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8))


def test_grid_views_are_tiles_of_the_picture_at_twice_the_size():
    prep = Preprocessing(size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0), grid=2)
    img = _picture()
    views = prep(img)
    assert views.shape == (5, 3, 32, 32) and prep.n_views == 5 and prep.min_side == 64
    single = Preprocessing(size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    np.testing.assert_array_equal(views[0], single(img)[0])  # view 0 is the global view
    big = Preprocessing(size=64, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))(img)[0]
    np.testing.assert_array_equal(views[1], big[:, :32, :32])  # top-left tile
    np.testing.assert_array_equal(views[4], big[:, 32:, 32:])  # bottom-right tile


def test_old_preprocessing_records_still_load_as_one_view():
    data = Preprocessing(size=224, mean=(0.5,) * 3, std=(0.5,) * 3).to_dict()
    del data["grid"]
    assert Preprocessing.from_dict(data).n_views == 1


def test_multicrop_pools_tile_embeddings_next_to_the_global_one(lite0):
    img = _picture(seed=1)
    multi = FeatureExtractor(lite0, get_recipe("multicrop"))
    views = multi.preprocessing(img)[None]
    vector = multi(views)[0]
    assert vector.shape == (multi.dim,) == (3 * 1280,)
    tiles = lite0.embed(views[0, 1:])[0]
    glob = FeatureExtractor(lite0, get_recipe("global"))
    global_vector = glob(glob.preprocessing(img)[None])[0]
    np.testing.assert_allclose(vector[:1280], global_vector, atol=1e-4)
    np.testing.assert_allclose(vector[1280:2560], tiles.mean(axis=0), atol=1e-4)
    np.testing.assert_allclose(vector[2560:], tiles.max(axis=0), atol=1e-4)


@pytest.mark.torch
def test_texture_statistics_are_channel_mean_and_std_of_intermediate_maps(lite0):
    import torch

    extractor = FeatureExtractor(lite0, get_recipe("multicrop+stats"))
    assert extractor.dim == 3 * 1280 + 2 * (40 + 112)
    views = torch.from_numpy(extractor.preprocessing(_picture(seed=2)))[None]
    stats = extractor(views.numpy())[0, 3 * 1280 :]
    captured = {}
    handle = lite0.model.blocks[2].register_forward_hook(lambda m, i, o: captured.setdefault("maps", o))
    with torch.inference_mode():
        lite0.model(views[0].contiguous(memory_format=torch.channels_last))
    handle.remove()
    maps = captured["maps"]
    np.testing.assert_allclose(stats[:40], maps.mean((2, 3)).mean(0).numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(stats[40:80], maps.std((2, 3)).mean(0).numpy(), rtol=1e-4, atol=1e-5)


def test_recipes_differ_in_cache_identity(lite0):
    identities = {FeatureExtractor(lite0 if recipe.stat_strides == lite0.stat_strides else
                                   load_backbone("efficientnet_lite0", stat_strides=recipe.stat_strides), recipe).identity()
                  for recipe in RECIPES.values()}
    assert len(identities) == len(RECIPES)


@pytest.mark.torch
def test_texture_recipe_reads_statistics_from_five_maps_and_keeps_the_rest_of_the_vector(lite0, tmp_path,
                                                                                      monkeypatch):
    """sized+texture = sized+stats with statistics at strides 2-32: same views and pooled
    embeddings, statistics of the stride-8 and -16 maps among its own, strokes and layout added."""
    monkeypatch.setenv("ARTSTYLE_CACHE_DIR", str(tmp_path))
    texture = get_recipe("sized+texture")
    assert texture.stat_strides == (2, 4, 8, 16, 32) and get_recipe("sized+stats").stat_strides == (8, 16)
    with pytest.raises(ArtstyleError, match="reads texture statistics at strides \\(8, 16\\)"):
        FeatureExtractor(lite0, texture)
    deep = load_backbone("efficientnet_lite0", stat_strides=texture.stat_strides)
    assert list(deep.taps.values()) == [16, 24, 40, 112, 320]  # EfficientNet-Lite0's maps at those strides
    ours, theirs = FeatureExtractor(deep, texture), FeatureExtractor(lite0, get_recipe("sized+stats"))
    assert ours.dim == 3 * 1280 + 2 * (16 + 24 + 40 + 112 + 320) and theirs.dim == 3 * 1280 + 2 * (40 + 112)
    views = ours.preprocessing(_picture(900, 700, seed=3))[None]
    a, b = ours(views)[0], theirs(views)[0]
    np.testing.assert_allclose(a[: 3 * 1280], b[: 3 * 1280], atol=1e-4)  # same views, same embeddings
    offsets = np.cumsum([0] + [2 * c for c in (16, 24, 40, 112, 320)])  # per map: its channels' means, then stds
    np.testing.assert_allclose(a[3 * 1280 :][offsets[2] : offsets[4]], b[3 * 1280 :], rtol=1e-4, atol=1e-5)
    # the onnx engine exports and caches its own graph for these strides, apart from the default one
    onnx_deep = load_backbone("efficientnet_lite0", engine="onnx", stat_strides=texture.stat_strides)
    np.testing.assert_allclose(FeatureExtractor(onnx_deep, texture)(views)[0], a, rtol=1e-3, atol=1e-3)
    again = load_backbone("efficientnet_lite0", engine="onnx", stat_strides=texture.stat_strides)
    assert again.stats_dim == deep.stats_dim and again._model is None  # restored from its cache entry
    assert load_backbone("efficientnet_lite0", engine="onnx").stats_dim == 2 * (40 + 112)


def test_recipe_and_backbone_names_are_checked():
    with pytest.raises(ArtstyleError, match="unknown feature recipe 'tiles'"):
        get_recipe("tiles")
    assert split_backbones("efficientnet_lite0+efficientnet_lite2") == ["efficientnet_lite0", "efficientnet_lite2"]
    with pytest.raises(ArtstyleError, match="each once"):
        split_backbones("efficientnet_lite0+efficientnet_lite0")


@pytest.mark.torch
def test_a_texture_model_learns_and_its_folder_round_trips_on_both_engines(tmp_path, cache_dir):
    """A model on `sized+texture` keeps its strides through the folder: loaded on onnx (its
    bundled graph) and on torch (the network rebuilt with the recipe's taps), it gives the
    probabilities it gave when trained, and it names new painters' movements."""
    from synth import TEXTURES, paint_texture

    from artstyle import StyleClassifier
    from artstyle.model.export import export_onnx

    images = [paint_texture(m, a, seed=100 * i + 10 * a + n) for i, m in enumerate(TEXTURES[:3])
              for a in range(3) for n in range(4)]
    labels = [m for m in TEXTURES[:3] for _ in range(12)]
    clf = StyleClassifier(features="sized+texture", head="logreg", negatives=0, test_fraction=0, size_variants=None,
                          cache_dir=cache_dir, show_progress=False).fit(images, labels)
    (extractor,) = clf.feature_extractors
    assert extractor.backbone.stat_strides == (2, 4, 8, 16, 32) and extractor.dim == 3 * 1280 + 1024
    new = [paint_texture(m, a, seed=5000 + 10 * a + n) for m in TEXTURES[:3] for a in (7, 8) for n in range(3)]
    truth = [m for m in TEXTURES[:3] for _ in range(6)]
    assert np.mean(np.array(clf.predict(new)) == np.array(truth)) >= 0.8
    folder = clf.save(tmp_path / "model")
    expected = clf.predict_proba(new[:4])
    for engine in ("onnx", "torch"):
        loaded = StyleClassifier.load(folder, engine=engine, cache_dir=False, show_progress=False)
        np.testing.assert_allclose(loaded.predict_proba(new[:4]), expected, atol=2e-3)
    session_input = np.stack([extractor.preprocessing(img) for img in new[:2]])
    ort = pytest.importorskip("onnxruntime")
    graph = ort.InferenceSession(str(export_onnx(clf, tmp_path / "m.onnx")), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(graph.run(None, {"views": session_input})[0], expected[:2], atol=1e-3)

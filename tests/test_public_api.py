"""The public face: every documented name imports from `artstyle`, cheaply, whatever the layout."""

import subprocess
import sys

from synth import TORCH_MISSING

import artstyle

PUBLIC = {
    "ArtstyleError", "BackboneInfo", "BundleError", "Dataset", "DatasetCheck", "DatasetError", "DownloadError",
    "Evaluation", "Explanation", "FeatureRecipe", "Neighbour", "SimilarPaintings", "SimilarityIndex", "deletion_test", "FineTuning", "finetune_backbone", "HEAD_KINDS", "Head", "register_head", "head_from_tensors", "ImageLoadError", "ImageRecord", "NotFittedError",
    "PaintingDetector", "Prediction", "RECIPES", "Split", "StyleClassifier", "available_backbones",
    "check_dataset", "create_app", "default_model_path", "get_dataset", "load_backbone", "load_bundle",
    "load_image", "make_folds", "make_split", "recording", "size_profile", "Resized", "SizeVariants", "BALANCINGS", "RowWeighting", "non_paintings", "normalize_label", "register_backbone", "save_bundle",
    "scan_dataset", "quantize_model", "Quantized", "PRECISIONS", "__version__",
}


def test_every_public_name_imports_from_the_package():
    """Every name, where PyTorch is installed; without it, all but those that need it."""
    assert PUBLIC <= set(artstyle.__all__)
    for name in artstyle.__all__:
        try:
            assert getattr(artstyle, name) is not None, name
        except ModuleNotFoundError as exc:
            assert TORCH_MISSING and exc.name in ("torch", "timm"), name
    assert (artstyle.default_model_path() / "config.json").is_file()


def test_importing_the_package_and_its_cli_stays_free_of_torch_and_python_m_runs():
    code = "import sys, artstyle, artstyle.apps.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
    done = subprocess.run([sys.executable, "-m", "artstyle", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "predict" in done.stdout

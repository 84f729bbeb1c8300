"""Predict latency: cold start of `artstyle predict` on one image, and warm per-image latency.

    python benchmarks/predict_latency.py [IMAGE] [--repeats 20] [--json]

Cold: wall time of a fresh `artstyle predict IMAGE` process with the shipped model, the
very first time (an empty user cache; the model folder carries its network's ONNX graph,
so nothing is built or exported) and then every later time (median of 5), and the peak
RSS of those processes; next to `artstyle --help` and the import of torch and of torch
and timm, which the predict path no longer pays. Warm: one image at a time through an
already loaded classifier, for the shipped model (multicrop) and for the default
backbone's single view.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image


def wall(command: list[str], repeats: int = 3, env: dict | None = None) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def painting(folder: Path) -> Path:
    """A generated 1200x900 JPEG."""
    image = folder / "painting.jpg"
    Image.effect_mandelbrot((1200, 900), (-2.0, -1.2, 1.0, 1.2), 100).convert("RGB").save(image, quality=90)
    return image


def cli() -> str:
    return shutil.which("artstyle") or str(Path(sys.executable).with_name("artstyle"))


def cold_start_s(image: Path | None = None, repeats: int = 3) -> float:
    """Median wall time of a fresh `artstyle predict IMAGE` process (the shipped model)
    as users get it every time after the first: the user cache as it is."""
    with tempfile.TemporaryDirectory() as tmp:
        image = image or painting(Path(tmp))
        return wall([cli(), "predict", str(image), "--format", "json"], repeats=repeats)


def warm_ms(extract, image: Path, repeats: int) -> float:
    extract(image)  # load the network, build the engine
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        extract(image)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("image", nargs="?", type=Path, help="an image [default: a generated 1200x900 JPEG]")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        image = args.image or painting(Path(tmp))
        predict = [cli(), "predict", str(image), "--format", "json"]
        env = {**os.environ, "ARTSTYLE_CACHE_DIR": str(Path(tmp) / "cache")}
        result = {
            "first_predict_s": wall(predict, repeats=1, env=env),
            "cold_predict_s": wall(predict, repeats=5, env=env),
            # the largest child so far: only `artstyle predict` processes have run
            "predict_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
            "cold_help_s": wall([cli(), "--help"]),
            "import_torch_s": wall([sys.executable, "-c", "import torch"]),
            "import_torch_timm_s": wall([sys.executable, "-c", "import torch, timm"]),
        }
        from artstyle import StyleClassifier, default_model_path

        shipped = StyleClassifier.load(default_model_path(), cache_dir=False, show_progress=False)
        single = StyleClassifier(features="global", cache_dir=False, show_progress=False)
        result["warm_predict_ms"] = warm_ms(lambda p: shipped.predict_top_k([p]), image, args.repeats)
        result["warm_single_view_ms"] = warm_ms(lambda p: single.extract([p]), image, args.repeats)
    print(f"cold `artstyle predict` one image: {result['cold_predict_s']:.2f} s, "
          f"the very first time {result['first_predict_s']:.2f} s "
          f"(`artstyle --help` {result['cold_help_s']:.2f} s; importing torch alone "
          f"{result['import_torch_s']:.2f} s, torch and timm {result['import_torch_timm_s']:.2f} s)")
    print(f"peak RSS of an `artstyle predict` process: {result['predict_peak_rss_mb']:.0f} MB")
    print(f"warm, one image at a time: shipped model (multicrop) {result['warm_predict_ms']:.0f} ms, "
          f"single view {result['warm_single_view_ms']:.0f} ms")
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

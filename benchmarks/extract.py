"""Extraction speed: the naive per-image pipeline vs artstyle's, on one set of images, in one run.

    python benchmarks/extract.py [--images 200] [--data DIR] [--backbone efficientnet_lite0] [--repeats 3] [--json]
    python benchmarks/extract.py --backbone clip-vit-b32 [--weights FILE] [--images 64]

A foundation backbone (one that does not ship in a wheel) gets the recipe table alone,
beside efficientnet_lite0 in the same run: images/s of `global`, `sized` and
`sized+texture` (token statistics on a ViT), fp32 and int8. Without --weights it runs the
real architecture with random weights (speed does not depend on their values).

Without --data it writes JPEGs (quality 90) with the size mix of a scan collection: half
about 800 px on the long side, a third about 1600 px, a fifth about 3000 px.
Measured, with the same backbone and images, each path the fastest of --repeats runs:
  naive           full-size PIL decode, resize, batch-1 eager forward, one image at a time
  inference only  the network alone on pre-decoded views at its best batch size, one call
                  at a time on every core or one single-core call per core at once
  artstyle        StyleClassifier.extract as `artstyle train` runs it (no cache), single
                  view, multicrop and the default recipe (DEFAULT_RECIPE), each in fp32 and
                  with the int8 embedding `artstyle quantize` writes (calibrated on 64 images)
  graphs          the embedding graph alone (ONNX Runtime, every core, best batch) as exported
                  before constant pads (TF "same" pads computed at run time), as exported
                  now, and in int8 as `artstyle quantize` writes it, with its cosine to fp32
                  (accuracy of int8 on artist-disjoint folds: `benchmarks/accuracy.py --int8`)
  ceiling         the machine's fp32 matmul GFLOP/s and the network's FLOPs per view
  peak RSS        of the artstyle path on --rss-images images vs a tenth of them
  cold start      `artstyle predict` on one image in a fresh process, median of 3
                  (benchmarks/predict_latency.py)
  accuracy        with --accuracy PAINTINGS [EXTRA ...]: top-1, top-3 and ECE of fp32 and
                  int8 side by side on the artist-disjoint folds of benchmarks/accuracy.py
                  (its default arm with --int8: full-size and extra-data scores)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from unittest import mock

import numpy as np
import torch
from accuracy import ARMS, int8_classifier
from accuracy import run as accuracy_run
from PIL import Image, ImageDraw
from predict_latency import cold_start_s

from artstyle import StyleClassifier
from artstyle.data.dataset import find_images
from artstyle.features.backbones import cpu_count, load_backbone
from artstyle.features.extraction import INFERENCE_CHUNK
from artstyle.features.int8 import CALIBRATION_BATCH, quantize_graph
from artstyle.features.recipes import DEFAULT_RECIPE

SIZE_MIX = ((0.5, 800), (1 / 3, 1600), (1 / 6, 3000))  # share of images, long side in px


def write_scans(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n distinct JPEGs with the scan size mix: a few smooth textures per size, each file
    marked differently so that no two share content (the cache would merge them)."""
    rng = np.random.default_rng(seed)
    bases = {}
    for _, side in SIZE_MIX:
        for k in range(4):
            small = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
            bases[side, k] = Image.fromarray(small).resize((side, side * 3 // 4), Image.Resampling.BICUBIC)
    sides = np.concatenate([[side] * int(round(share * n)) for share, side in SIZE_MIX])[:n]
    sides = np.concatenate([sides, [SIZE_MIX[0][1]] * (n - len(sides))])
    paths = []
    for i, side in enumerate(rng.permutation(sides)):
        img = bases[int(side), i % 4].copy()
        ImageDraw.Draw(img).rectangle([10, 10, 60, 60], fill=(i % 256, (i // 256) % 256, 128))
        path = folder / f"scan-{i:05d}.jpg"
        img.save(path, quality=90)
        paths.append(path)
    return paths


def best_ips(run, n_images: int, repeats: int) -> float:
    """Images/s of the fastest of `repeats` runs: other tenants of a shared machine only
    ever slow a run down, and every path gets the same number of tries."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return n_images / min(times)


def naive_ips(backbone_name: str, paths: list[Path], repeats: int) -> float:
    backbone = load_backbone(backbone_name)
    model = backbone.model.to(memory_format=torch.contiguous_format)
    prep = backbone.preprocessing

    def run() -> None:
        with torch.no_grad():
            for path in paths:
                with Image.open(path) as img:
                    views = prep(img.convert("RGB"))
                model.forward_head(model.forward_features(torch.from_numpy(views)), pre_logits=True)

    return best_ips(run, len(paths), repeats)


def inference_only_ips(backbone_name: str, paths: list[Path], repeats: int) -> tuple[float, int, str]:
    """Best images/s of the network alone on views decoded beforehand, default engine,
    over batch sizes and two ways of using the cores: one call at a time on all of them,
    or one single-threaded call per core at once (what artstyle's lanes do)."""
    backbone = load_backbone(backbone_name)
    backbone.use_engine("auto")
    prep = backbone.preprocessing
    views = np.concatenate([prep(Image.open(p).convert("RGB")) for p in paths[:64]])
    cores = cpu_count()
    best = (0.0, 0, "")
    for batch in (1, 4, INFERENCE_CHUNK, 16, 32):
        starts = range(0, len(views), batch)

        def sequential() -> None:
            for i in starts:
                backbone.embed(views[i : i + batch])

        def parallel() -> None:
            with ThreadPoolExecutor(cores) as pool:
                list(pool.map(lambda i: backbone.embed(views[i : i + batch], threads=1), starts))

        for mode, run in (("one call on every core", sequential), (f"{cores} one-core calls", parallel)):
            run()  # sessions built outside the clock
            best = max(best, (best_ips(run, len(views), repeats), batch, mode))
    return best


def artstyle_ips(backbone_name: str, recipe: str, paths: list[Path], repeats: int, int8: bool = False,
                 weights: Path | None = None) -> float:
    """`int8`: with the embedding `artstyle quantize` writes (calibrated on the first 64 images)."""
    clf = (int8_classifier(recipe, False, paths[:64], backbone_name, weights=weights) if int8 else
           StyleClassifier(backbone_name, features=recipe, weights=weights, cache_dir=False, show_progress=False))
    clf.extract(paths[:4])  # load the network and build the engine outside the clock
    return best_ips(lambda: clf.extract(paths), len(paths), repeats)


def graph_ips(graph: bytes, views: np.ndarray, repeats: int) -> tuple[float, list[np.ndarray]]:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = cpu_count()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    outputs = session.run(None, {"images": views})
    best = 0.0
    for batch in (1, 8, 32):
        def run() -> None:
            for i in range(0, len(views), batch):
                session.run(None, {"images": views[i : i + batch]})

        best = max(best, best_ips(run, len(views), repeats))
    return best, outputs


def graphs_ips(backbone_name: str, paths: list[Path], repeats: int) -> dict:
    """Images/s of the graph with run-time pads, with constant pads, and in int8; the int8
    graph is calibrated on the first half of the views and compared on the second."""
    from artstyle.features import networks

    backbone = load_backbone(backbone_name)
    views = np.concatenate([backbone.preprocessing(Image.open(p).convert("RGB")) for p in paths[:128]])
    with mock.patch.object(networks, "static_same_padding", lambda model, size: model):
        runtime_pads = networks.export_embedding(backbone, True)  # the export as it was before constant pads
    fp32 = networks.export_embedding(backbone, True)
    half = len(views) // 2
    int8 = quantize_graph(fp32, [views[i : i + CALIBRATION_BATCH] for i in range(0, half, CALIBRATION_BATCH)])
    held = views[half:]
    result = {"runtime_pads_ips": graph_ips(runtime_pads, held, repeats)[0]}
    result["constant_pads_ips"], reference = graph_ips(fp32, held, repeats)
    result["int8_ips"], quantized = graph_ips(int8, held, repeats)
    for name, a, b in zip(("pooled", "stats"), quantized, reference):
        cosine = np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
        result[f"int8_{name}_cosine_mean"], result[f"int8_{name}_cosine_min"] = float(cosine.mean()), float(cosine.min())
    return result


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def flops_per_view(backbone_name: str) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    backbone = load_backbone(backbone_name)
    size = backbone.preprocessing.size
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        backbone.model(torch.zeros(1, 3, size, size))
    return float(counter.get_total_flops())


def peak_rss_mb(backbone_name: str, folder: Path) -> float:
    """Peak RSS (MB) of a fresh process extracting every image in `folder`: the larger of
    the process's own high-water mark (VmHWM: ru_maxrss would inherit this benchmark's
    size across fork) and its decode workers' peak."""
    code = (
        "import re, resource; from artstyle import StyleClassifier; from artstyle.data.dataset import find_images\n"
        f"paths = sorted(find_images({str(folder)!r}))\n"
        f"StyleClassifier({backbone_name!r}, features='global', cache_dir=False, show_progress=False).extract(paths)\n"
        "own = int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))\n"
        "print(max(own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return int(out.split()[-1]) / 1024


def int8_accuracy(data: list[Path], seed: int) -> dict:
    """fp32 and int8 scores of the default arm on the accuracy benchmark's folds (its --int8)."""
    default_arm = next(a for a in ARMS if a[1] == DEFAULT_RECIPE)
    args = argparse.Namespace(data=data, folds=3, seed=seed, heads=("logreg",), arms=[default_arm], cost_images=8,
                              cache_dir=Path(tempfile.gettempdir()) / "artstyle-bench-cache", int8=True,
                              weight_range="auto")
    arm = next(a for a in accuracy_run(args)["arms"] if "int8" in a)
    table = {"weight_range": arm["int8"]["weight_range"], "flagged": arm["int8"]["flagged"]}
    for name in ("i", "ii", "iii"):
        if name in arm["int8"]:
            q = arm["int8"][name]
            table[name] = {"fp32": [arm[name]["top1"], arm[name]["top3"], arm[name]["ece"]],
                           "int8": [q["top1"], q["top3"], q["ece"]], "top1_change_se": q["top1_change_se"],
                           "same_top1": q["same_top1"]}
    return table


FOUNDATION_RECIPES = ("global", "sized", "sized+texture")


def recipe_table(backbone: str, weights: Path | None, paths: list[Path], repeats: int) -> dict:
    """Images/s per recipe, fp32 and int8, of `backbone` and of efficientnet_lite0 in the same run."""
    table: dict = {}
    for name, file in (("efficientnet_lite0", None), (backbone, weights)):
        for recipe in FOUNDATION_RECIPES:
            fp32 = artstyle_ips(name, recipe, paths, repeats, weights=file)
            int8 = artstyle_ips(name, recipe, paths, repeats, int8=True, weights=file)
            table[f"{name}|{recipe}"] = {"fp32_ips": fp32, "int8_ips": int8}
            print(f"{name:20s} {recipe:14s} fp32 {fp32:7.1f} img/s, int8 {int8:7.1f} img/s ({int8 / fp32:.2f}x)",
                  flush=True)
    return table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--data", type=Path, help="a folder of images instead of generated scans")
    parser.add_argument("--backbone", default="efficientnet_lite0")
    parser.add_argument("--rss-images", type=int, default=2000, help="images for the memory check (0: skip)")
    parser.add_argument("--repeats", type=int, default=3, help="runs of each path; the fastest counts")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--accuracy", type=Path, nargs="+", metavar="DATA",
                        help="also score fp32 and int8 on artist-disjoint folds of these painting folders "
                        "(benchmarks/accuracy.py's default arm; the full-size collection first)")
    parser.add_argument("--seed", type=int, default=0, help="fold draw of --accuracy")
    parser.add_argument("--weights", type=Path, help="a foundation backbone's checkpoint (default: random weights)")
    args = parser.parse_args()
    from artstyle.features.backbones import get_info

    foundation = not args.backbone.startswith("timm:") and not get_info(args.backbone).offline

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if args.data:
            paths = sorted(find_images(args.data))[: args.images]
            source = str(args.data)
        else:
            (tmp / "scans").mkdir()
            paths = write_scans(tmp / "scans", args.images)
            source = "generated scan mix"
        print(f"{len(paths)} images ({source}), {args.backbone}, {torch.get_num_threads()} threads", flush=True)
        result: dict = {"images": len(paths), "source": source, "backbone": args.backbone}
        if foundation:
            from artstyle.features.random_weights import random_checkpoint

            weights = args.weights or random_checkpoint(args.backbone, tmp / "random.safetensors")
            result["weights"] = str(args.weights) if args.weights else "random (real architecture)"
            result["recipes"] = recipe_table(args.backbone, weights, paths, args.repeats)
            if args.json:
                print(json.dumps(result, indent=2))
            return
        result["naive_ips"] = naive_ips(args.backbone, paths, args.repeats)
        print(f"naive (full decode, batch 1, eager):   {result['naive_ips']:7.1f} img/s", flush=True)
        result["inference_only_ips"], result["inference_batch"], result["inference_mode"] = inference_only_ips(
            args.backbone, paths, args.repeats)
        print(f"inference only (batch {result['inference_batch']:2d}, {result['inference_mode']}): "
              f"{result['inference_only_ips']:7.1f} img/s", flush=True)
        for key, recipe, name in (("artstyle", "global", "single view"), ("artstyle_multicrop", "multicrop", "multicrop"),
                                  ("artstyle_default", DEFAULT_RECIPE, f"default ({DEFAULT_RECIPE})")):
            fp32 = result[f"{key}_ips"] = artstyle_ips(args.backbone, recipe, paths, args.repeats)
            int8 = result[f"{key}_int8_ips"] = artstyle_ips(args.backbone, recipe, paths, args.repeats, int8=True)
            print(f"artstyle, {name + ':':24s} fp32 {fp32:7.1f} img/s, int8 {int8:7.1f} img/s ({int8 / fp32:.2f}x)",
                  flush=True)
        graphs = graphs_ips(args.backbone, paths, args.repeats)
        result.update(graphs)
        print(f"graph alone: run-time pads {graphs['runtime_pads_ips']:.1f}, constant pads {graphs['constant_pads_ips']:.1f} "
              f"({graphs['constant_pads_ips'] / graphs['runtime_pads_ips']:.2f}x), int8 {graphs['int8_ips']:.1f} views/s "
              f"({graphs['int8_ips'] / graphs['constant_pads_ips']:.2f}x of fp32); int8 vs fp32 cosine: pooled mean "
              f"{graphs['int8_pooled_cosine_mean']:.4f} (min {graphs['int8_pooled_cosine_min']:.3f}), stats mean "
              f"{graphs['int8_stats_cosine_mean']:.4f} (min {graphs['int8_stats_cosine_min']:.3f})", flush=True)
        result["speedup"] = result["artstyle_ips"] / result["naive_ips"]
        result["efficiency"] = result["artstyle_ips"] / result["inference_only_ips"]
        result["matmul_gflops"] = matmul_gflops()
        result["gflops_per_view"] = flops_per_view(args.backbone) / 1e9
        result["ceiling_fraction"] = result["artstyle_ips"] * result["gflops_per_view"] / result["matmul_gflops"]
        result["pandora18k_minutes"] = 18038 / result["artstyle_ips"] / 60
        print(f"speedup over naive {result['speedup']:.2f}x; efficiency {result['efficiency']:.2f} of inference only; "
              f"{result['gflops_per_view']:.2f} GFLOP/view, ceiling {result['matmul_gflops']:.0f} GFLOP/s -> "
              f"{result['ceiling_fraction']:.2f} of it; Pandora18k single view in {result['pandora18k_minutes']:.1f} min",
              flush=True)
        result["cold_start_s"] = cold_start_s()
        print(f"cold start of `artstyle predict` on one image: {result['cold_start_s']:.2f} s", flush=True)
        if args.rss_images:
            big = tmp / "rss"
            big.mkdir()
            write_scans(big, args.rss_images, seed=1)
            small = tmp / "rss-small"
            small.mkdir()
            for path in sorted(big.iterdir())[: args.rss_images // 10]:
                (small / path.name).symlink_to(path)
            result["peak_rss_mb_small"] = peak_rss_mb(args.backbone, small)
            result["peak_rss_mb"] = peak_rss_mb(args.backbone, big)
            print(f"peak RSS: {result['peak_rss_mb']:.0f} MB on {args.rss_images} images, "
                  f"{result['peak_rss_mb_small']:.0f} MB on {args.rss_images // 10} "
                  f"({result['peak_rss_mb'] / result['peak_rss_mb_small']:.2f}x)", flush=True)
        if args.accuracy:
            result["accuracy"] = table = int8_accuracy(args.accuracy, args.seed)
            print(f"accuracy on artist-disjoint folds ({table['weight_range']}-range int8): top-1 / top-3 / ECE")
            for name, label in (("i", "full-size"), ("ii", "extra data"), ("iii", "full-size shrunk")):
                if name in table:
                    a, b = table[name]["fp32"], table[name]["int8"]
                    print(f"  ({name}) {label:17s} fp32 {a[0]:.3f} / {a[1]:.3f} / {a[2]:.3f}   int8 {b[0]:.3f} / "
                          f"{b[1]:.3f} / {b[2]:.3f}   top-1 {100 * (b[0] - a[0]):+.1f} +- "
                          f"{100 * table[name]['top1_change_se']:.1f} points, same top-1 {table[name]['same_top1']:.1%}",
                          flush=True)
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

"""Speed of whole model folders, side by side in one run: what a candidate for the shipped
default costs against today's.

    python benchmarks/model_speed.py CANDIDATE [--baseline MODEL] [--images 96] [--repeats 2] [--json]

For each folder (the baseline first; default: the shipped model):
  throughput  images/s of `StyleClassifier.predict_proba` over the generated scan mix of
              benchmarks/extract.py (800-3000 px JPEGs, decoding included), fp32 and, when
              the folder has one, its int8 embedding; best of --repeats passes, no cache
  cold start  median wall time of a fresh `artstyle predict -m FOLDER IMAGE` process (5 runs
              after one that warms the OS's file cache), the way a user runs it
Ratios are against the baseline of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from extract import write_scans  # noqa: E402

from artstyle import StyleClassifier, default_model_path  # noqa: E402


def throughput(folder: Path, precision: str, paths: list[Path], repeats: int) -> float:
    clf = StyleClassifier.load(folder, precision=precision, cache_dir=False, show_progress=False)
    clf.predict_proba(paths[:4])  # sessions built, graphs read
    best = 0.0
    for _ in range(repeats):
        start = time.perf_counter()
        clf.predict_proba(paths)
        best = max(best, len(paths) / (time.perf_counter() - start))
    return best


def cold_start(folder: Path, image: Path, env: dict) -> float:
    command = [str(Path(sys.executable).with_name("artstyle")), "predict", "-m", str(folder), str(image), "--format", "json"]
    subprocess.run(command, check=True, capture_output=True, env=env)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True, env=env)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("candidate", type=Path)
    parser.add_argument("--baseline", type=Path, default=default_model_path())
    parser.add_argument("--images", type=int, default=96)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_scans(Path(tmp), args.images)
        env = {**os.environ, "ARTSTYLE_CACHE_DIR": str(Path(tmp) / "cache")}
        for name, folder in (("baseline", args.baseline), ("candidate", args.candidate)):
            config = json.loads((folder / "config.json").read_text())
            backbones = "+".join(b["name"] for b in config["features"]["backbones"])
            row = {"folder": str(folder), "backbones": backbones, "recipe": config["features"]["recipe"],
                   "fp32_ips": throughput(folder, "fp32", paths, args.repeats), "cold_predict_s": cold_start(folder, paths[0], env)}
            if all(b.get("graph_int8") for b in config["features"]["backbones"]):
                row["int8_ips"] = throughput(folder, "int8", paths, args.repeats)
            results[name] = row
    base = results["baseline"]
    print(f"{args.images} images (generated scan mix), {os.cpu_count()} CPUs")
    for name, row in results.items():
        int8 = f", int8 {row['int8_ips']:.1f} img/s" if "int8_ips" in row else ""
        ratio = (f"  ({row['fp32_ips'] / base['fp32_ips']:.2f}x fp32, cold {row['cold_predict_s'] / base['cold_predict_s']:.2f}x)"
                 if name != "baseline" else "")
        print(f"{name:>9}: {row['backbones']} {row['recipe']}: fp32 {row['fp32_ips']:.1f} img/s{int8}; cold predict "
              f"{row['cold_predict_s']:.2f} s{ratio}")
    if args.json:
        print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()

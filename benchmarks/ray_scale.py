"""Ray Data batch prediction against the local engine, on generated scans.

    python benchmarks/ray_scale.py [--images 400] [--memory-paths 2000 20000] [--json FILE]

All on this machine, in one run: the shipped model predicting `--images` generated scans
(benchmarks/extract.py's mix) in one process (`StyleClassifier.predict_top_k`, ONNX
Runtime: the local engine), then `predict_on_ray` on a local Ray with 2 CPUs, with 1 and
2 actors. Prints images/s, the ratio of Ray with 2 actors to the local engine (target
>= 0.85), the scaling from 1 to 2 actors, and a paper projection for N nodes from the
measured rate of a 2-CPU node. Then driver memory: the driver's peak RSS while Ray labels a
list of 2,000 and of 20,000 paths (one image repeated, so that only the list grows),
which must stay flat: results stream to Parquet, none are held.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from extract import write_scans  # noqa: E402

from artstyle import StyleClassifier, default_model_path  # noqa: E402

DRIVER = """
import resource, sys, time
from artstyle.apps.ray_predict import predict_on_ray
predict_on_ray(sys.argv[1], sys.argv[2], sys.argv[3], address="local", batch_size=64)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
"""


def ray_ips(paths_file: Path, model: Path, actors: int, n: int, work: Path) -> float:
    from artstyle.apps.ray_predict import predict_on_ray

    out = work / f"out-{actors}"
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    predict_on_ray(str(paths_file), model, out, actors=actors, batch_size=16)
    return n / (time.perf_counter() - start)


def driver_rss_mb(image: Path, model: Path, n_paths: int, work: Path) -> float:
    """Peak RSS of a fresh driver process labelling `n_paths` lines (all the same image)."""
    listing = work / f"paths-{n_paths}.txt"
    listing.write_text((str(image) + "\n") * n_paths)
    out = work / f"memory-{n_paths}"
    shutil.rmtree(out, ignore_errors=True)
    done = subprocess.run([sys.executable, "-c", DRIVER, str(listing), str(model), str(out)],
                          capture_output=True, text=True, check=True)
    return float(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--memory-paths", type=int, nargs="*", default=[2000, 20000])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import ray

    model = default_model_path()
    results: dict = {"images": args.images}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "scans").mkdir()
        paths = write_scans(work / "scans", args.images)
        listing = work / "paths.txt"
        listing.write_text("\n".join(map(str, paths)) + "\n")

        clf = StyleClassifier.load(model, cache_dir=False, engine="onnx", show_progress=False)
        clf.predict_top_k(paths[:8])  # build the engine
        start = time.perf_counter()
        clf.predict_top_k(paths)
        results["local_ips"] = round(args.images / (time.perf_counter() - start), 2)
        del clf

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
        ray_ips(listing, model, 2, args.images, work)  # warm: workers started, graph cached
        for actors in (1, 2):
            results[f"ray_{actors}_actor_ips"] = round(ray_ips(listing, model, actors, args.images, work), 2)
        ray.shutdown()
        per_actor = results["ray_1_actor_ips"]
        results["ray_vs_local"] = round(results["ray_2_actor_ips"] / results["local_ips"], 3)
        results["scaling_1_to_2_actors"] = round(results["ray_2_actor_ips"] / per_actor, 2)
        print(f"{args.images} generated scans, shipped model (Lite0 multicrop), 2 CPUs")
        print(f"  local engine (one process):  {results['local_ips']:.1f} images/s")
        print(f"  Ray, 1 actor:                {results['ray_1_actor_ips']:.1f} images/s")
        print(f"  Ray, 2 actors:               {results['ray_2_actor_ips']:.1f} images/s "
              f"({results['ray_vs_local']:.0%} of local; target >= 85 %)")
        print(f"  1 -> 2 actors: x{results['scaling_1_to_2_actors']}")
        for nodes in (4, 16, 64):
            rate = nodes * results["ray_2_actor_ips"]  # a 2-CPU node with 2 actors, as measured here
            print(f"  projection, {nodes} nodes of 2 CPUs: {rate:.0f} images/s, 1M images in {1e6 / rate / 3600:.1f} h "
                  "(if storage keeps up)")
        results["driver_peak_rss_mb"] = {}
        for n in args.memory_paths:
            rss = driver_rss_mb(paths[0], model, n, work)
            results["driver_peak_rss_mb"][str(n)] = round(rss)
            print(f"  driver peak RSS for {n} paths: {rss:.0f} MB")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()

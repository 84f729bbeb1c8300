"""The light install against the full one: size, install time, cold predict and train.

    python benchmarks/install.py ../shared/data/paintings [--baseline CHECKOUT] [--head logreg] [--json out.json]

Makes two fresh virtual environments in a temporary folder and, in each, times
`pip install` (from the local wheel cache) and measures the venv's size:

  light   `pip install .` of this checkout: no torch
  full    `pip install CHECKOUT[torch]`: the same with PyTorch (CHECKOUT defaults to this
          checkout; name a checkout of an earlier commit to compare with the torch-fitted
          heads that came before the light install)

Then, in each, with an empty user cache: `artstyle predict one.jpg` (the shipped model,
first call after installing) and `artstyle train PAINTINGS` (empty feature cache), both
timed from the shell, and compares the two trained models: head weights (relative L2),
held-out top-1 on the same test split, and whether torch was imported by the light one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _size_mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file() and not f.is_symlink()) / 1e6


def _timed(command: list[str], env: dict | None = None) -> tuple[float, str]:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, command))} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start, result.stdout


def _install(venv: Path, requirement: str) -> dict:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    seconds, _ = _timed([str(venv / "bin" / "pip"), "install", "-q", requirement])
    has_torch = subprocess.run([str(venv / "bin" / "python"), "-c", "import torch"], capture_output=True).returncode == 0
    return {"install_s": round(seconds, 1), "venv_mb": round(_size_mb(venv)), "torch": has_torch}


def _head(model: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(model / "model.safetensors"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--baseline", type=Path, default=ROOT, help="checkout installed with [torch] (default: this one)")
    parser.add_argument("--image", type=Path, default=None, help="the image to predict (default: the first in DATA)")
    parser.add_argument("--head", default="auto", help="the head `train` fits in both (auto: each chooses)")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    image = args.image or next(p for p in sorted(args.data.rglob("*")) if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="artstyle-install-") as tmp:
        tmp = Path(tmp)
        for name, requirement in (("light", str(ROOT)), ("full", f"{args.baseline}[torch]")):
            venv = tmp / name
            row = _install(venv, requirement)
            env = {**os.environ, "ARTSTYLE_CACHE_DIR": str(tmp / f"{name}-cache")}
            artstyle = str(venv / "bin" / "artstyle")
            row["predict_cold_s"] = round(_timed([artstyle, "predict", str(image)], env)[0], 2)
            row["predict_warm_s"] = round(_timed([artstyle, "predict", str(image)], env)[0], 2)
            row["train_s"] = round(_timed([artstyle, "-q", "train", str(args.data), "--out", str(tmp / f"{name}-model"),
                                           "--head", args.head], env)[0], 1)
            _, out = _timed([artstyle, "evaluate", str(tmp / f"{name}-model"), str(args.data), "--format", "json"], env)
            row["test_top1"] = json.loads(out)["accuracy"]
            row["head"] = json.loads((tmp / f"{name}-model" / "config.json").read_text())["head"]["kind"]
            results[name] = row
            print(name, row, flush=True)
            shutil.rmtree(venv)  # a 6 GB venv: one at a time
        light, full = _head(tmp / "light-model"), _head(tmp / "full-model")
        shared = sorted(set(light) & set(full))
        results["head_weights_relative_l2"] = {
            key: round(float(np.linalg.norm(light[key] - full[key]) / max(np.linalg.norm(full[key]), 1e-12)), 4)
            for key in shared}
        results["same_splits"] = (tmp / "light-model" / "splits.csv").read_text() == (
            tmp / "full-model" / "splits.csv").read_text()
    print(json.dumps({k: results[k] for k in ("head_weights_relative_l2", "same_splits")}, indent=1))
    l, f = results["light"], results["full"]
    print(f"light / full: venv {l['venv_mb'] / f['venv_mb']:.2f}x, install {l['install_s'] / f['install_s']:.2f}x, "
          f"cold predict {l['predict_cold_s'] / f['predict_cold_s']:.2f}x, train {l['train_s'] / f['train_s']:.2f}x; "
          f"test top-1 {l['test_top1']:.3f} / {f['test_top1']:.3f}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()

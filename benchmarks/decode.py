"""Decoding and cutting views: where the CPU time of a scan goes before the network.

    python benchmarks/decode.py [--images 200] [--data DIR] [--json]

On the generated scan mix of benchmarks/extract.py (or --data), one thread, ms per image:
  pillow full         Image.open + convert("RGB"): the whole scan
  pillow draft        artstyle's load_image: libjpeg-turbo's DCT scaling (Pillow draft mode)
                      down to the smallest size that keeps the views' detail
  simplejpeg          libjpeg-turbo's scaled decoding through simplejpeg (when installed),
                      asked for the same minimum size, fast DCT and upsampling as draft mode
  views               draft decode + every view of the recipe (resize, crop, normalise),
                      as artstyle cuts them, and as it cut them before (whole picture
                      resized, then cropped; three-step normalisation)
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from extract import write_scans  # noqa: E402

from artstyle.data.dataset import find_images  # noqa: E402
from artstyle.data.images import load_image  # noqa: E402
from artstyle.features.preprocess import Preprocessing  # noqa: E402

LITE0 = Preprocessing(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))  # EfficientNet-Lite's own


def per_image_ms(fn, paths: list[Path], repeats: int = 3) -> float:
    """Median over `repeats` passes of the mean ms per image."""
    fn(paths[0])
    runs = []
    for _ in range(repeats):
        start = time.perf_counter()
        for path in paths:
            fn(path)
        runs.append(1000 * (time.perf_counter() - start) / len(paths))
    return statistics.median(runs)


def simplejpeg_decode(path: Path, min_side: int) -> np.ndarray:
    import simplejpeg

    data = path.read_bytes()
    width, height, _, _ = simplejpeg.decode_jpeg_header(data)
    scale = min(1.0, min_side / min(width, height))
    return simplejpeg.decode_jpeg(data, "RGB", fastdct=True, fastupsample=True,
                                  min_width=math.ceil(width * scale), min_height=math.ceil(height * scale))


def previous_views(prep: Preprocessing, img: Image.Image) -> np.ndarray:
    """How views were cut before this round: resize the whole picture, crop, normalise in
    three passes."""
    def square(side: int) -> Image.Image:
        w, h = img.size
        scale = side / min(w, h)
        nw, nh = max(side, round(w * scale)), max(side, round(h * scale))
        left, top = (nw - side) // 2, (nh - side) // 2
        return img.resize((nw, nh), Image.Resampling.BICUBIC).crop((left, top, left + side, top + side))

    def normalise(view: Image.Image) -> np.ndarray:
        x = np.asarray(view, np.float32) * (1 / 255)
        return ((x - np.asarray(prep.mean, np.float32)) / np.asarray(prep.std, np.float32)).transpose(2, 0, 1)

    s = prep.size
    views = [square(s)]
    if prep.grid > 1:
        big = square(s * prep.grid)
        views += [big.crop((c * s, r * s, (c + 1) * s, (r + 1) * s)) for r in range(prep.grid) for c in range(prep.grid)]
    return np.ascontiguousarray(np.stack([normalise(v) for v in views]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--data", type=Path, help="a folder of images instead of generated scans")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    try:
        import simplejpeg  # noqa: F401
        has_simplejpeg = True
    except ImportError:
        has_simplejpeg = False
    with tempfile.TemporaryDirectory() as tmp:
        if args.data:
            paths = sorted(find_images(args.data))[: args.images]
        else:
            paths = write_scans(Path(tmp), args.images)
        jpegs = [p for p in paths if p.suffix.lower() in (".jpg", ".jpeg")]
        result: dict = {"images": len(paths), "source": str(args.data or "generated scan mix")}
        result["pillow_full_ms"] = per_image_ms(lambda p: Image.open(p).convert("RGB"), paths)
        for grid in (1, 2):
            prep = LITE0 if grid == 1 else Preprocessing(224, LITE0.mean, LITE0.std, grid=2)
            name = "global" if grid == 1 else "multicrop"
            result[f"pillow_draft_{name}_ms"] = per_image_ms(lambda p: load_image(p, prep.min_side), paths)
            if has_simplejpeg and jpegs:
                result[f"simplejpeg_{name}_ms"] = per_image_ms(lambda p: simplejpeg_decode(p, prep.min_side), jpegs)
            result[f"views_{name}_ms"] = per_image_ms(lambda p: prep(load_image(p, prep.min_side)), paths)
            result[f"views_{name}_previous_ms"] = per_image_ms(
                lambda p: previous_views(prep, load_image(p, prep.min_side)), paths)
    print(f"{result['images']} images ({result['source']}), one thread, ms per image")
    print(f"  full-size Pillow decode                 {result['pillow_full_ms']:6.2f}")
    for name in ("global", "multicrop"):
        line = f"  {name:9s} draft decode {result[f'pillow_draft_{name}_ms']:6.2f}"
        if f"simplejpeg_{name}_ms" in result:
            line += f"   simplejpeg {result[f'simplejpeg_{name}_ms']:6.2f}"
        print(line)
        print(f"  {name:9s} decode + views {result[f'views_{name}_ms']:6.2f} "
              f"(before: {result[f'views_{name}_previous_ms']:6.2f}, "
              f"x{result[f'views_{name}_previous_ms'] / result[f'views_{name}_ms']:.2f})")
    if args.json:
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()

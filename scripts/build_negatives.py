"""Build the real non-painting features that ship inside artstyle (src/artstyle/assets/negatives/).

    python scripts/build_negatives.py ../shared/data/not_paintings [--backbone efficientnet_lite0 ...]
    python scripts/build_negatives.py ../shared/data/not_paintings --pictures

Each supported backbone gets one safetensors file: the global-view embedding (float16)
of every image under NOT_PAINTINGS/<kind>/..., and the texture statistics of the default
recipe (`sized+texture`: mean and std of five feature maps, over its views), with its kind
(photo, chart, document) and source. The painting
detector of every model trained on that backbone learns from them, so a user who never
gives artstyle a photo still gets a detector that knows photos. Provenance (counts per
kind and source, the manifest's hash, weights id, date) is stored in the file's metadata
and printed into model cards.

`--pictures` instead copies the photos whose licence lets them ship (PICTURE_LICENCES),
shrunk to a long side of 320 px, into `pictures/photo/`, with `pictures/SOURCES.md`: a
backbone without shipped features (CLIP, SigLIP, DINOv2, timm:) embeds them itself, once,
so its detector learns real photographs too.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from artstyle import StyleClassifier
from artstyle.features.recipes import DEFAULT_RECIPE
from artstyle.model.negatives import NEGATIVES_DIR, REAL_KINDS

SHIPPED_BACKBONES = ("efficientnet_lite0", "efficientnet_lite2")
# Sources whose pictures may ship inside artstyle (licences as stated by each source,
# ../shared/data/README.md); the others ship as features only.
PICTURE_LICENCES = {"marcusklasson/GroceryStoreDataset": "MIT", "alexeygrigorev/clothing-dataset-small": "CC0-1.0"}
PICTURE_SIDE = 320


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="NOT_PAINTINGS/<kind>/<image>; a manifest CSV beside it names sources")
    parser.add_argument("--backbone", nargs="+", default=list(SHIPPED_BACKBONES))
    parser.add_argument("--out", type=Path, default=NEGATIVES_DIR)
    parser.add_argument("--pictures", action="store_true", help="copy the pictures that may ship, not features")
    args = parser.parse_args()
    if args.pictures:
        ship_pictures(args.folder, args.out / "pictures")
        return
    from safetensors.numpy import save

    from artstyle.files import atomic_write_bytes

    manifest = args.folder.parent / "not-paintings-manifest.csv"
    sources: dict[str, str] = {}
    if manifest.is_file():
        sources = {row["relpath"]: row["source_repo"] for row in csv.DictReader(manifest.open())}
    paths = sorted(p for p in args.folder.rglob("*") if p.is_file() and p.parent.name in REAL_KINDS)
    if not paths:
        sys.exit(f"{args.folder}: no images under {', '.join(REAL_KINDS)}/")
    rel = [p.relative_to(args.folder).as_posix() for p in paths]
    kinds = np.array([REAL_KINDS.index(p.parent.name) for p in paths], np.uint8)
    source_names = sorted({sources.get(r, "unknown") for r in rel})
    source_ids = np.array([source_names.index(sources.get(r, "unknown")) for r in rel], np.uint8)
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.backbone:
        clf = StyleClassifier(name, features=DEFAULT_RECIPE)
        (extractor,) = clf.feature_extractors
        extraction = clf.extract([str(p) for p in paths], None, f"Non-paintings ({name})")
        ok = extraction.ok
        dim, stats_dim = extractor.backbone.feature_dim, extractor.backbone.stats_dim
        features = extraction.features[ok, :dim].astype(np.float16)  # the global view's embedding
        stats = extraction.features[ok, -stats_dim:].astype(np.float16)  # the recipe's texture statistics
        meta = {
            "backbone": name,
            "weights_id": extractor.backbone.weights_id,
            "view": f"global view of the {DEFAULT_RECIPE} recipe",
            "stats_recipe": DEFAULT_RECIPE,
            "preprocessing": json.dumps(extractor.preprocessing.to_dict()),
            "kinds": json.dumps(list(REAL_KINDS)),
            "sources": json.dumps(source_names),
            "counts": json.dumps({k: int((kinds[ok] == i).sum()) for i, k in enumerate(REAL_KINDS)}),
            "source_counts": json.dumps({s: int((source_ids[ok] == i).sum()) for i, s in enumerate(source_names)}),
            "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest() if manifest.is_file() else "",
            "built": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        target = args.out / f"{name}.safetensors"
        tensors = {"features": features, "stats": stats, "kind": kinds[ok], "source": source_ids[ok]}
        atomic_write_bytes(target, save(tensors, metadata=meta))
        print(f"{target}: {int(ok.sum())} non-paintings, {features.shape[1]} + {stats.shape[1]} dims, "
              f"{target.stat().st_size / 1e6:.1f} MB")


def ship_pictures(folder: Path, out: Path) -> None:
    """The photos of PICTURE_LICENCES' sources, shrunk, with their provenance."""
    from PIL import Image

    rows = [row for row in csv.DictReader((folder.parent / "not-paintings-manifest.csv").open())
            if row["source_repo"] in PICTURE_LICENCES and row["kind"] == "photo"]
    (out / "photo").mkdir(parents=True, exist_ok=True)
    lines = ["# Photographs that ship inside artstyle", "",
             "Real photographs a backbone without shipped non-painting features embeds for its",
             "'not a painting' detector (built by `scripts/build_negatives.py --pictures`), shrunk to a",
             f"long side of {PICTURE_SIDE} px. Licences as stated by each source.", "",
             "| file | source repository | commit | path there | licence |", "|---|---|---|---|---|"]
    for row in sorted(rows, key=lambda r: r["relpath"]):
        image = Image.open(folder / row["relpath"]).convert("RGB")
        image.thumbnail((PICTURE_SIDE, PICTURE_SIDE), Image.Resampling.LANCZOS)
        name = Path(row["relpath"]).name
        image.save(out / "photo" / name, "JPEG", quality=85)
        lines.append(f"| photo/{name} | {row['source_repo']} | {row['source_commit'][:12]} | {row['source_path']} | "
                     f"{PICTURE_LICENCES[row['source_repo']]} |")
    (out / "SOURCES.md").write_text("\n".join(lines) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*.jpg"))
    print(f"{out}: {len(rows)} photographs, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()

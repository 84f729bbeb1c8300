#!/usr/bin/env bash
# Retrain the model that ships inside the package (src/artstyle/assets/default_model) and its
# MODEL_CARD.md from one or more painting trees DATA/<movement>/<artist>/<image>, merged:
#   scripts/train_default_model.sh ../shared/data/paintings ../shared/data/wikiart
# Its "not a painting" detector learns from the real non-paintings in
# src/artstyle/assets/negatives (built by scripts/build_negatives.py NOT_PAINTINGS).
# Uses the artstyle installed in the active Python (override with PYTHON=...); features are
# cached in ARTSTYLE_CACHE_DIR (default: the user cache folder).
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: scripts/train_default_model.sh DATA [DATA ...] [train options]" >&2; exit 2; }
python=${PYTHON:-python}
out="$(cd "$(dirname "$0")/.." && pwd)/src/artstyle/assets/default_model"

# All paintings train; the scores in the card come from artist-disjoint cross-validation.
# The recipe, balancing and size variants are the defaults docs/accuracy.md chose
# (benchmarks/accuracy.py).
"$python" -m artstyle train "$@" --out "$out" --split artist --test-fraction 0 --graph
# No int8 embedding: on the default recipe it lost 1.5 +- 0.6 points of top-1 on
# full-size paintings of unseen artists (docs/performance.md#int8), over the 1-point guard.
# `artstyle quantize` adds one to a copy for users who prefer the speed.
"$python" -m artstyle info "$out" --format markdown > "$out/MODEL_CARD.md.tmp"
mv "$out/MODEL_CARD.md.tmp" "$out/MODEL_CARD.md"
echo "default model and model card written to $out"

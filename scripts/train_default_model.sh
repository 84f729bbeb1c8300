#!/usr/bin/env bash
# Retrain the model that ships inside the package (src/artstyle/assets/default_model) and its
# MODEL_CARD.md from a painting tree DATA/<movement>/<artist>/<image>.
#   scripts/train_default_model.sh ../shared/data/paintings
# Its "not a painting" detector learns from the real non-paintings in
# src/artstyle/assets/negatives (built by scripts/build_negatives.py NOT_PAINTINGS).
# Uses the artstyle installed in the active Python (override with PYTHON=...).
set -euo pipefail
data=${1:?usage: scripts/train_default_model.sh DATA}
python=${PYTHON:-python}
out="$(cd "$(dirname "$0")/.." && pwd)/src/artstyle/assets/default_model"

# All paintings train; the scores in the card come from artist-disjoint cross-validation.
# The recipe is the one docs/accuracy.md chose (benchmarks/accuracy.py).
"$python" -m artstyle train "$data" --out "$out" --split artist --test-fraction 0 --features "${FEATURES:-multicrop}" --graph
"$python" -m artstyle info "$out" --format markdown > "$out/MODEL_CARD.md.tmp"
mv "$out/MODEL_CARD.md.tmp" "$out/MODEL_CARD.md"
echo "default model and model card written to $out"

#!/usr/bin/env bash
# Retrain the model that ships inside the package (src/artstyle/assets/default_model) and its
# MODEL_CARD.md from a painting tree DATA/<movement>/<artist>/<image>.
#   scripts/train_default_model.sh ../shared/data/paintings
# Uses the artstyle installed in the active Python (override with PYTHON=...).
set -euo pipefail
data=${1:?usage: scripts/train_default_model.sh DATA}
python=${PYTHON:-python}
out="$(cd "$(dirname "$0")/.." && pwd)/src/artstyle/assets/default_model"

# All paintings train; the scores in the card come from artist-disjoint cross-validation.
"$python" -m artstyle train "$data" --out "$out" --split artist --test-fraction 0 --features multicrop
"$python" -m artstyle info "$out" --format markdown > "$out/MODEL_CARD.md.tmp"
mv "$out/MODEL_CARD.md.tmp" "$out/MODEL_CARD.md"
echo "default model and model card written to $out"

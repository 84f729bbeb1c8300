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
# The recipe, balancing and size variants are the defaults docs/notes/accuracy.md chose
# (benchmarks/accuracy.py).
"$python" -m artstyle train "$@" --out "$out" --split artist --test-fraction 0 --graph
# The int8 embedding, full-range: `auto` runs it only on CPUs that sum int8 products exactly
# (AVX-512 VNNI, ARM dot products), where it matched fp32 within the guard of
# docs/notes/performance.md#int8 (convolutions up to stride 4 in fp32, outputs bias-corrected);
# other CPUs run the fp32 one. quantize writes a copy (it never writes into the installed
# package's model), which then takes the old folder's place.
data=()
for arg in "$@"; do [[ $arg == -* ]] && break; data+=("$arg"); done  # the folders, before any train option
rm -rf "$out.int8" "$out.old"
"$python" -m artstyle quantize "$out" "${data[@]}" --out "$out.int8" --weight-range full
mv "$out" "$out.old" && mv "$out.int8" "$out" && rm -rf "$out.old"
"$python" -m artstyle info "$out" --format markdown > "$out/MODEL_CARD.md.tmp"
mv "$out/MODEL_CARD.md.tmp" "$out/MODEL_CARD.md"
"$python" "$(dirname "$0")/pin_default_answers.py"  # the answers refactors must keep (tests/test_default_model.py)
echo "default model and model card written to $out"

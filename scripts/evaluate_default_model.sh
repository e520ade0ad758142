#!/usr/bin/env bash
# Reproduce the validation numbers of the bundled default model (docs/model-card.md):
# segment the held-out BraTS 2018 cases with all four sequences and with each one left out,
# then score them with `voxmmsd evaluate` on the original grids.
# Usage: scripts/evaluate_default_model.sh [BRATS2018_DIR] [OUT_DIR] [extra segment options]
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data/brats2018}
OUT=${2:-out/default-model-eval}
shift $(( $# > 2 ? 2 : $# )) || true
VAL="Brats18_CBICA_ALU_1 Brats18_TCIA02_606_1 Brats18_2013_20_1"
VX=${VOXMMSD:-.venv/bin/voxmmsd}
declare -A SUFFIX=([t1n]=_t1 [t1c]=_t1ce [t2w]=_t2 [t2f]=_flair)
for variant in all t1n t1c t2w t2f; do
  src="$OUT/inputs-$variant"
  rm -rf "$src"; mkdir -p "$src"
  for c in $VAL; do
    mkdir -p "$src/$c"
    for f in "$DATA/$c"/*.nii.gz; do
      if [ "$variant" != all ] && [ "$(basename "$f")" = "$c${SUFFIX[$variant]}.nii.gz" ]; then continue; fi
      ln -s "$(realpath "$f")" "$src/$c/"
    done
  done
  "$VX" -q segment --batch "$src" --out "$OUT/pred-$variant" "$@"
  "$VX" -q evaluate --pred "$OUT/pred-$variant" --ref "$src" --out "$OUT/eval-$variant" > "$OUT/eval-$variant.txt"
  echo "== without ${variant/all/nothing} =="; cat "$OUT/eval-$variant.txt"
done

#!/usr/bin/env bash
# Reproduce the numbers of docs/model-card.md.
#
#   scripts/evaluate_default_model.sh [DATA] [OUT] [MODE]
#     DATA  the development data (default ../shared/data: brats2018/ and extra/)
#     OUT   working folder (default out/default-model-eval)
#     MODE  held-out (default): the bundled default model (MODEL, default voxmmsd-brats-default;
#             MODEL=voxmmsd-brats-default@2.0.0 for the CPU model) on the 10 extra/ cases no
#             bundled model was selected on, as they are and as simulated 5 mm thick-slice exams;
#             then the 3 brats2018 validation cases of 1.0.0 with each sequence left out
#           crossval: the 5-fold cross-validation of the 1.0.0 and 2.0.0 recipes at the reduced
#             CPU scale (trains 10 models: about an hour on 2 CPU cores), scored through
#             `voxmmsd segment` + `voxmmsd evaluate`, with the nested ET post-processing choice
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
OUT=${2:-out/default-model-eval}
MODE=${3:-held-out}
VX=${VOXMMSD:-.venv/bin/voxmmsd}
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-voxmmsd-brats-default}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"

score() {  # score PRED REF NAME
  "$VX" -q evaluate --pred "$1" --ref "$2" --out "$OUT/eval-$3" > "$OUT/eval-$3.txt"
  echo "== $3 =="; cat "$OUT/eval-$3.txt"
}

if [ "$MODE" = crossval ]; then
  SPLITS=docs/results/crossval/splits.json
  CV=$OUT/cv
  $PY scripts/crossval.py splits --source brats2018="$DATA/brats2018" --source extra="$DATA/extra" \
      --out "$CV/splits-check.json" --data-out "$CV/data" > /dev/null
  cmp <($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['folds'])" "$SPLITS") \
      <($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['folds'])" "$CV/splits-check.json") \
      || { echo "the folds differ from $SPLITS"; exit 1; }
  for r in r100:cpu-1.0.0 r200:cpu-2.0.0; do
    name=${r%%:*}; recipe=${r##*:}
    $PY scripts/crossval.py run --data "$CV/data" --splits "$SPLITS" --out "$CV" --name "$name" \
        --config "scripts/recipes/$recipe.yaml" --set data.cache_dir="$CV/cache"
    $PY scripts/crossval.py score --data "$CV/data" --splits "$SPLITS" --out "$CV" --name "$name"
    $PY scripts/crossval.py postprocess --data "$CV/data" --splits "$SPLITS" --out "$CV" --name "$name" --write
    $PY scripts/crossval.py score --data "$CV/data" --splits "$SPLITS" --out "$CV" --name "$name" \
        --pred "$CV/$name/pred-pp" --eval-name eval-pp
  done
  exit 0
fi

# held-out: the 10 extra/ cases as they are, and as 5 mm thick-slice exams
EXTRA=("$DATA"/extra/*/*/)
mkdir -p "$OUT/inputs-extra"
for c in "${EXTRA[@]}"; do ln -sfn "$(realpath "$c")" "$OUT/inputs-extra/$(basename "$c")"; done
$PY scripts/make_variants.py --cases "$OUT/inputs-extra" --out "$OUT/variants" --only thick
for v in extra:"$OUT/inputs-extra" thick5mm:"$OUT/variants/thick5mm"; do
  name=${v%%:*}; src=${v#*:}
  "$VX" -q segment --batch "$src" --out "$OUT/pred-$name" --model "$MODEL" --device cpu --progress none --no-qc
  score "$OUT/pred-$name" "$src" "$name"
done

# the 3 brats2018 validation cases of 1.0.0, all sequences and each one left out
VAL="Brats18_CBICA_ALU_1 Brats18_TCIA02_606_1 Brats18_2013_20_1"
declare -A SUFFIX=([t1n]=_t1 [t1c]=_t1ce [t2w]=_t2 [t2f]=_flair)
for variant in all t1n t1c t2w t2f; do
  src="$OUT/inputs-val-$variant"
  rm -rf "$src"; mkdir -p "$src"
  for c in $VAL; do
    mkdir -p "$src/$c"
    for f in "$DATA/brats2018/$c"/*.nii.gz; do
      if [ "$variant" != all ] && [ "$(basename "$f")" = "$c${SUFFIX[$variant]}.nii.gz" ]; then continue; fi
      ln -sfn "$(realpath "$f")" "$src/$c/"
    done
  done
  "$VX" -q segment --batch "$src" --out "$OUT/pred-val-$variant" --model "$MODEL" --device cpu --progress none --no-qc
  score "$OUT/pred-val-$variant" "$src" "val-without-${variant/all/nothing}"
done

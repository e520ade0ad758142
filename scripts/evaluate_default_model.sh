#!/usr/bin/env bash
# Reproduce the numbers of docs/model-card.md.
#
#   scripts/evaluate_default_model.sh [DATA] [OUT] [MODE]
#     DATA  the development data (default ../shared/data: brats2018/ and extra/)
#     OUT   working folder (default out/default-model-eval)
#     MODE  protocol (default): the 3.0.0 protocol (docs/model-protocol.md) — 5-fold CV over the 28
#             cases with the fold models of scripts/train_default_v3.sh (TRAIN, default out/train-v3),
#             the pipeline-shift set, leave-one-source-out (where its pieces exist), and 1.0.0 and 2.1.0
#             (BASELINES) on the cases each never trained on; then the tables and the rule
#             (OUT/protocol/protocol.json). STEPS picks parts: "shift baselines candidate loso table"
#             (and "ensemble"). ARM names the candidate arm (default v3; e.g. ARM=v3p KEEP=pieces/v3p
#             TRAIN=out/train-v3p for the folds fine-tuned from pre-training). ENSEMBLE="pieces/v3 pieces/v3p"
#             with the step "ensemble" packages, per fold, the fold models kept in those folders as one
#             fold ensemble (each member trained without that fold's cases) and scores it as arm ENS_ARM
#             (default ens); CANDIDATE picks the arm the tables and the rule judge (default ARM).
#             The step "nested-pp" (after "candidate") chooses, per fold and on the other folds' held-out
#             predictions of ARM, the limit under which tumour components are removed (PP_LIMITS, mL),
#             writes it into copies of the fold models (OUT/pieces-<ARM>c, scripts/apply_nested_limits.py)
#             and scores them, clean and shifted, as arm <ARM>c (round 7: ARM=v3j KEEP=pieces/v3j
#             STEPS="candidate nested-pp table" CANDIDATE=v3jc).
#           warmstart: the numbers of the former default model 2.1.0 — the 5-fold
#             cross-validation of its recipe (1.0.0 continued on the other folds,
#             scripts/recipes/cpu-warm-2.1.0.yaml; trains 5 full-size models, about 75 minutes
#             on 2 CPU cores) against 1.0.0 as it is, on the 13 cases 1.0.0 never trained on;
#             the nested component-filter choice; plain and TTA inference (1.0.0) for accuracy
#             against time; simulated 5 mm exams and each sequence left out (10 extra/ cases)
#           held-out: a bundled model (MODEL, default voxmmsd-brats-default@1.0.0;
#             MODEL=voxmmsd-brats-default@2.0.0 for the reduced CPU model) on the 10 extra/ cases
#             1.0.0 was not trained or selected on, as they are and as simulated 5 mm
#             thick-slice exams; then the 3 brats2018 validation cases of 1.0.0 with each
#             sequence left out
#           crossval: the 5-fold cross-validation of the 1.0.0 and 2.0.0 recipes at the reduced
#             CPU scale (trains 10 models: about an hour on 2 CPU cores), scored through
#             `voxmmsd segment` + `voxmmsd evaluate`, with the nested ET post-processing choice
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
OUT=${2:-out/default-model-eval}
MODE=${3:-protocol}
VX=${VOXMMSD:-.venv/bin/voxmmsd}
PY=${PY:-.venv/bin/python}
MODEL=${MODEL:-voxmmsd-brats-default@1.0.0}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$OUT"

score() {  # score PRED REF NAME
  "$VX" -q evaluate --pred "$1" --ref "$2" --out "$OUT/eval-$3" > "$OUT/eval-$3.txt"
  echo "== $3 =="; cat "$OUT/eval-$3.txt"
}

check_folds() {  # check_folds CV: the committed folds, and every case linked into CV/data
  "$VX" experiment crossval splits --source brats2018="$DATA/brats2018" --source extra="$DATA/extra" \
      --out "$1/splits-check.json" --data-out "$1/data" > /dev/null
  cmp <($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['folds'])" "$SPLITS") \
      <($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['folds'])" "$1/splits-check.json") \
      || { echo "the folds differ from $SPLITS"; exit 1; }
}
SPLITS=docs/results/crossval/splits.json

if [ "$MODE" = protocol ]; then
  CV=$OUT/protocol
  TRAIN=${TRAIN:-out/train-v3}
  S3=docs/results/v3/splits.json
  SHIFTS="thick5mm bias zscore uint8 ras"
  STEPS=${STEPS:-shift baselines candidate loso table}
  M=Resources/models/voxmmsd-brats-default
  BASELINES=${BASELINES:-b100=$M/1.0.0 w210=${W210:-$M}}
  KEEP=${KEEP:-pieces/v3}
  ARM=${ARM:-v3}
  ENS_ARM=${ENS_ARM:-ens}
  mkdir -p "$CV"
  D=$DATA
  "$VX" experiment crossval splits --source brats2018="$D/brats2018" --source brats2018="$D/extra/brats18" \
      --source brats2021="$D/extra/brats21" --source brats2023="$D/extra/brats23" \
      --source upenn-gbm="$D/extra/upenn-gbm" --together Brats18_2013_20_1,BraTS-GLI-00012-000 \
      --out "$CV/splits-check.json" --data-out "$CV/data" > /dev/null
  cmp <($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['folds'])" "$S3") \
      <($PY -c "import json,sys; print(json.load(open(sys.argv[1]))['folds'])" "$CV/splits-check.json") \
      || { echo "the folds differ from $S3"; exit 1; }
  X=(--data "$CV/data" --splits "$S3" --out "$CV")
  link_package() {  # link_package FOLD_DIR PACKAGE: an arm's fold (or LOSO fold) whose model is PACKAGE
    if [ -L "$1" ]; then rm -f "$1"; fi  # it linked a training run before
    mkdir -p "$1"; ln -sfn "$(realpath "$2")" "$1/model"
  }
  shifted() {  # shifted ARM [run/variant options]: segment and score every shift of ARM's held-out cases
    local arm=$1; shift
    for sh in $SHIFTS; do
      "$VX" experiment crossval variant --variant "$CV/shift/$sh" --pred-name "pred-$sh" --splits "$S3" \
          --out "$CV" --name "$arm" "$@"
      local seen=(); [ "${1:-}" = --model ] && seen=(--exclude-seen-by "$2")
      "$VX" experiment crossval score --data "$CV/shift/$sh" --splits "$S3" --out "$CV" --name "$arm" \
          --pred "$CV/$arm/pred-$sh" --eval-name "eval-$sh" "${seen[@]}"
    done
  }
  if [[ " $STEPS " == *" shift "* ]]; then
    $PY scripts/make_variants.py --cases "$CV/data" --out "$CV/shift" --only thick,bias,zscore,uint8,ras
  fi
  if [[ " $STEPS " == *" baselines "* ]]; then
    for b in $BASELINES; do
      arm=${b%%=*}; model=${b#*=}
      "$VX" experiment crossval run "${X[@]}" --name "$arm" --model "$model" --exclude-seen-by "$model"
      "$VX" experiment crossval score "${X[@]}" --name "$arm" --exclude-seen-by "$model"
      shifted "$arm" --model "$model" --exclude-seen-by "$model"
    done
  fi
  if [[ " $STEPS " == *" candidate "* ]]; then
    mkdir -p "$CV/$ARM"
    for k in 0 1 2 3 4; do  # the training's own fold models, else the pieces kept in the repository
      if [ -f "$TRAIN/fold$k/model/model.json" ]; then
        ln -sfn "$(realpath "$TRAIN/fold$k")" "$CV/$ARM/fold$k"
      elif [ -f "$KEEP/fold$k/model.json" ]; then
        link_package "$CV/$ARM/fold$k" "$KEEP/fold$k"
      else
        echo "fold $k not trained yet ($TRAIN/fold$k, $KEEP/fold$k)"; exit 1
      fi
    done
    "$VX" experiment crossval run "${X[@]}" --name "$ARM"
    "$VX" experiment crossval score "${X[@]}" --name "$ARM"
    shifted "$ARM"
  fi
  if [[ " $STEPS " == *" nested-pp "* ]]; then
    "$VX" experiment crossval postprocess "${X[@]}" --name "$ARM" --kind components \
        --limits "${PP_LIMITS:-0,0.1,0.5,1,2,5,10,20}"
    $PY scripts/apply_nested_limits.py "$CV/$ARM" "$OUT/pieces-${ARM}c" "$CV/$ARM/postprocess-components.json"
    for k in 0 1 2 3 4; do link_package "$CV/${ARM}c/fold$k" "$OUT/pieces-${ARM}c/fold$k"; done
    "$VX" experiment crossval run "${X[@]}" --name "${ARM}c"
    "$VX" experiment crossval score "${X[@]}" --name "${ARM}c"
    shifted "${ARM}c"
  fi
  if [[ " $STEPS " == *" ensemble "* ]]; then
    [ -n "${ENSEMBLE:-}" ] || { echo "the ensemble step needs ENSEMBLE=\"KEEP_DIR KEEP_DIR ...\""; exit 2; }
    for k in 0 1 2 3 4; do  # fold k's ensemble: every member's fold-k model (none saw fold k's cases)
      members=(); for dir in $ENSEMBLE; do members+=("$dir/fold$k"); done
      if [ ! -f "$CV/$ENS_ARM/fold$k/model/model.json" ]; then
        mkdir -p "$CV/$ENS_ARM/fold$k"
        $PY scripts/package_ensemble.py "${members[@]}" "$CV/$ENS_ARM/fold$k/model" --version 3.0.0 \
            --name "fold $k ensemble of $ENSEMBLE" --description "cross-validation: trained without fold $k"
      fi
    done
    "$VX" experiment crossval run "${X[@]}" --name "$ENS_ARM"
    "$VX" experiment crossval score "${X[@]}" --name "$ENS_ARM"
    shifted "$ENS_ARM"
  fi
  if [[ " $STEPS " == *" loso "* ]]; then
    $PY - "$S3" "$CV/loso-splits.json" <<'PYEOF'
import json, sys
s = json.load(open(sys.argv[1]))["sources"]
names = sorted(set(s.values()))
json.dump({"k": len(names), "names": names, "sources": s,
           "folds": [sorted(c for c, v in s.items() if v == n) for n in names]}, open(sys.argv[2], "w"), indent=1)
PYEOF
    mkdir -p "$CV/loso"
    i=0; ready=()
    for src in $($PY -c "import json,sys; print(' '.join(json.load(open(sys.argv[1]))['names']))" "$CV/loso-splits.json"); do
      if [ -f "$TRAIN/loso-$src/model/model.json" ]; then
        ln -sfn "$(realpath "$TRAIN/loso-$src")" "$CV/loso/fold$i"; ready+=("$i")
      elif [ -f "$KEEP/loso-$src/model.json" ]; then
        link_package "$CV/loso/fold$i" "$KEEP/loso-$src"; ready+=("$i")
      else
        echo "leave-one-source-out: $src not trained yet ($TRAIN/loso-$src); skipped"
      fi
      i=$((i + 1))
    done
    if [ ${#ready[@]} -gt 0 ]; then
      "$VX" experiment crossval run --data "$CV/data" --splits "$CV/loso-splits.json" --out "$CV" --name loso \
          --folds "$(IFS=,; echo "${ready[*]}")"
      missing=$($PY -c "import json,sys; f=json.load(open(sys.argv[1]))['folds']; r={int(v) for v in sys.argv[2].split(',')}; print(','.join(c for i, x in enumerate(f) if i not in r for c in x))" "$CV/loso-splits.json" "$(IFS=,; echo "${ready[*]}")")
      "$VX" experiment crossval score --data "$CV/data" --splits "$CV/loso-splits.json" --out "$CV" --name loso \
          ${missing:+--exclude "$missing"}
    fi
  fi
  if [[ " $STEPS " == *" table "* ]]; then
    args=(); for b in $BASELINES; do args+=(--baseline "$b"); done
    "$VX" experiment crossval protocol --out "$CV" --splits "$S3" --candidate "${CANDIDATE:-$ARM}" "${args[@]}"
  fi
  exit 0
fi

if [ "$MODE" = warmstart ]; then
  CV=$OUT/cv
  check_folds "$CV"
  START=Resources/models/voxmmsd-brats-default/1.0.0
  X=(--data "$CV/data" --splits "$SPLITS" --out "$CV")
  SEEN=(--exclude-seen-by "$START")
  # the baseline arm: 1.0.0 as it is (plain, then with TTA), on the cases it never trained on
  "$VX" experiment crossval run "${X[@]}" --name b100 --model "$START" "${SEEN[@]}"
  "$VX" experiment crossval run "${X[@]}" --name b100tta --model "$START" "${SEEN[@]}" --segment --tta
  # the candidate arm: 1.0.0 continued on the other folds (the fold's own cases never seen)
  "$VX" experiment crossval run "${X[@]}" --name w210 --config scripts/recipes/cpu-warm-2.1.0.yaml \
      --set data.cache_dir="$CV/cache1mm" "${SEEN[@]}"
  for name in b100 b100tta w210; do
    "$VX" experiment crossval score "${X[@]}" --name "$name" "${SEEN[@]}"
    "$VX" experiment crossval postprocess "${X[@]}" --name "$name" "${SEEN[@]}" --kind components \
        --limits 0,1,2,5,10,20 --write
    "$VX" experiment crossval score "${X[@]}" --name "$name" "${SEEN[@]}" \
        --pred "$CV/$name/pred-pp-components" --eval-name eval-pp
    # then small ET components -> NETC, chosen the same way on the filtered predictions
    "$VX" experiment crossval postprocess "${X[@]}" --name "$name" "${SEEN[@]}" --kind et-components \
        --limits 0,0.1,0.25,0.5,1,2 --pred "$CV/$name/pred-pp-components" --write
    "$VX" experiment crossval score "${X[@]}" --name "$name" "${SEEN[@]}" \
        --pred "$CV/$name/pred-pp-et-components" --eval-name eval-pp2
    "$VX" experiment crossval uncertainty --out "$CV" --name "$name"
  done
  "$VX" experiment crossval postprocess "${X[@]}" --name w210 "${SEEN[@]}" --kind et   # whole-ET rule: off in every fold
  "$VX" experiment crossval table --out "$CV" b100 b100:eval-pp b100:eval-pp2 b100tta w210 w210:eval-pp w210:eval-pp2
  "$VX" experiment crossval compare --out "$CV" b100 w210
  "$VX" experiment crossval compare --out "$CV" b100:eval-pp2 w210:eval-pp2
  "$VX" experiment crossval compare --out "$CV" w210 w210:eval-pp2
  "$VX" experiment crossval compare --out "$CV" b100 b100tta
  # simulated 5 mm exams and each sequence left out, the 10 extra/ cases, out-of-fold models
  EXTRA=("$DATA"/extra/*/*/)
  mkdir -p "$OUT/inputs-extra"
  for c in "${EXTRA[@]}"; do ln -sfn "$(realpath "$c")" "$OUT/inputs-extra/$(basename "$c")"; done
  $PY scripts/make_variants.py --cases "$OUT/inputs-extra" --out "$OUT/variants"
  for v in thick5mm no_t1n no_t1c no_t2w no_t2f; do
    for arm in b100 w210; do
      model=(); [ "$arm" = b100 ] && model=(--model "$START")
      "$VX" experiment crossval variant --variant "$OUT/variants/$v" --pred-name "pred-$v" --splits "$SPLITS" \
          --out "$CV" --name "$arm" "${model[@]}" "${SEEN[@]}"
      "$VX" experiment crossval score --data "$OUT/variants/$v" --splits "$SPLITS" --out "$CV" --name "$arm" \
          --pred "$CV/$arm/pred-$v" --eval-name "eval-$v"  # only extra/ cases: none excluded
    done
  done
  exit 0
fi

if [ "$MODE" = crossval ]; then
  CV=$OUT/cv
  check_folds "$CV"
  for r in r100:cpu-1.0.0 r200:cpu-2.0.0; do
    name=${r%%:*}; recipe=${r##*:}
    "$VX" experiment crossval run --data "$CV/data" --splits "$SPLITS" --out "$CV" --name "$name" \
        --config "scripts/recipes/$recipe.yaml" --set data.cache_dir="$CV/cache"
    "$VX" experiment crossval score --data "$CV/data" --splits "$SPLITS" --out "$CV" --name "$name"
    "$VX" experiment crossval postprocess --data "$CV/data" --splits "$SPLITS" --out "$CV" --name "$name" --write
    "$VX" experiment crossval score --data "$CV/data" --splits "$SPLITS" --out "$CV" --name "$name" \
        --pred "$CV/$name/pred-pp-et" --eval-name eval-pp
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

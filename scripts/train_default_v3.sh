#!/usr/bin/env bash
# Train the 3.0.0 recipe (scripts/recipes/cpu-3.0.0.yaml: whole brain at 2 mm, half-width U-Net,
# z-score normalisation, strong augmentation) on the CPU: one model per cross-validation fold of
# docs/results/v3/splits.json (28 cases, grouped, stratified by source), then the shipped model on all
# 28 cases, then one model per left-out source (leave-one-source-out: BraTS 2018, 2021, 2023,
# UPENN-GBM; trained on the other three). Each piece is a separate run folder; a run that was stopped (Ctrl-C, SIGTERM, a session's
# end) is resumed from its last checkpoint, and a finished one is skipped, so the script can be run
# again in a later sitting and continues where the last one stopped.
#
#   scripts/train_default_v3.sh [DATA] [WORK] [PIECES...]
#     DATA    the development data (default ../shared/data: brats2018/ and extra/)
#     WORK    working folder (default out/train-v3): WORK/data (links), WORK/cache, WORK/fold0..4, WORK/all,
#             WORK/loso-<source>
#     KEEP    (environment) where finished pieces are kept in the repository, float16 (default pieces/v3);
#             a piece found there is not trained again. Commit KEEP after each sitting.
#     INIT    (environment) start every piece from these pre-trained weights (a `voxmmsd pretrain` run
#             folder, e.g. one made with scripts/recipes/cpu-3.0.0-pretrain.yaml); default: from scratch
#     PIECES  which runs, in order (default: fold0 fold1 fold2 fold3 fold4 all loso-brats2018 loso-brats2021
#             loso-brats2023 loso-upenn-gbm)
# About 17 minutes per piece (1,000 steps of ~1 s) on 2 idle cores with jemalloc. Needs .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
WORK=${2:-out/train-v3}
shift $(( $# > 2 ? 2 : $# )) || true
PIECES=${*:-fold0 fold1 fold2 fold3 fold4 all loso-brats2018 loso-brats2021 loso-brats2023 loso-upenn-gbm}
PY=${PY:-.venv/bin/python}
VX=${VOXMMSD:-.venv/bin/voxmmsd}
RECIPE=${RECIPE:-scripts/recipes/cpu-3.0.0.yaml}
SPLITS=${SPLITS:-docs/results/v3/splits.json}
# torch may count one physical core on a 2-vCPU machine and run one thread: use every CPU
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(nproc)}
JEMALLOC=$(ls /usr/lib/*/libjemalloc.so.2 2>/dev/null | head -1 || true)
if [ -n "$JEMALLOC" ]; then  # docs: PERFORMANCE (glibc malloc re-faults every activation; -30 % a step)
  export LD_PRELOAD="$JEMALLOC" MALLOC_CONF=dirty_decay_ms:-1,muzzy_decay_ms:-1
else
  echo "note: libjemalloc2 not found (apt-get install libjemalloc2); training is slower without it" >&2
fi
mkdir -p "$WORK"
D=$DATA
"$VX" experiment crossval splits --source brats2018="$D/brats2018" --source brats2018="$D/extra/brats18" \
    --source brats2021="$D/extra/brats21" --source brats2023="$D/extra/brats23" \
    --source upenn-gbm="$D/extra/upenn-gbm" --together Brats18_2013_20_1,BraTS-GLI-00012-000 \
    --out "$WORK/splits.json" --data-out "$WORK/data" > /dev/null
if ! cmp -s <("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["folds"])' "$WORK/splits.json") \
            <("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["folds"])' "$SPLITS"); then
  echo "error: the folds made from $DATA differ from $SPLITS (other data?)" >&2; exit 2
fi
KEEP=${KEEP:-pieces/v3}  # finished pieces kept in the repository (float16): a later sitting starts from them
for piece in $PIECES; do
  run="$WORK/$piece"
  if [ -f "$run/model/model.json" ]; then echo "$piece: done ($run/model)"; continue; fi
  if [ -f "$KEEP/$piece/model.json" ]; then echo "$piece: done in an earlier sitting ($KEEP/$piece)"; continue; fi
  if [ "$piece" = all ]; then
    train=$("$PY" -c 'import json,sys; print(",".join(sorted(c for f in json.load(open(sys.argv[1]))["folds"] for c in f)))' "$SPLITS")
  elif [ "${piece#loso-}" != "$piece" ]; then
    train=$("$PY" -c 'import json,sys; s=json.load(open(sys.argv[1]))["sources"]; print(",".join(sorted(c for c, v in s.items() if v != sys.argv[2])))' "$SPLITS" "${piece#loso-}")
  else
    k=${piece#fold}
    train=$("$PY" -c 'import json,sys; f=json.load(open(sys.argv[1]))["folds"]; k=int(sys.argv[2]); print(",".join(sorted(c for i,x in enumerate(f) if i!=k for c in x)))' "$SPLITS" "$k")
  fi
  if [ -f "$run/checkpoints/last.pt" ]; then
    echo "$piece: resuming $run"
    "$VX" finetune --resume "$run"
  else
    echo "$piece: training on $(echo "$train" | tr ',' '\n' | wc -l) cases -> $run"
    "$VX" finetune --data "$WORK/data" --out "$run" --train "$train" --val 0 --config "$RECIPE" \
        ${INIT:+--init "$INIT"} --set data.cache_dir="$WORK/cache" --set package.model_id=voxmmsd-brats-default --set package.version=3.0.0
  fi
  # keep the finished piece in the repository (commit it: pieces/ is what the next sitting continues from)
  [ -f "$run/model/model.json" ] && "$PY" scripts/save_fold_pieces.py "$WORK" "$KEEP" "$piece"
done

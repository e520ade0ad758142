#!/usr/bin/env bash
# The 3.0.0 recipe (RECIPE, default scripts/recipes/cpu-3.0.0-nojitter.yaml, the closest to the rule so
# far, rounds 6-7 of docs/model-card.md; scripts/recipes/cpu-3.0.0.yaml is round 1's: whole brain at 2 mm,
# half-width U-Net, z-score normalisation, strong augmentation) on a lent GPU machine, with the schedule
# a GPU affords: the five cross-validation fold models and the all-cases model (the same pieces as
# scripts/train_default_v3.sh), each for STEPS steps instead of the CPU's 1,000, inside one
# ~10-minute device call. PREPARED, NOT RUN: no GPU was lent to the session that wrote it.
#
# Budget (one H100/H200, batch 2 of 80x96x80 at 2 mm, 8 loader workers, bf16): about 40-60 ms a
# step, so 6 pieces x 1,500 steps ~ 6-9 minutes. A piece cut by the timeout keeps its checkpoint;
# run the script again (same W) and it resumes.
#
# Before the call, on the CPU machine holding the images (no GPU needed), build the 2 mm cache once
# and ship it with the run (carry: .gpu):
#   (any run of scripts/train_default_v3.sh has linked the 28 cases into out/train-v3/data)
#   .venv/bin/voxmmsd finetune --data out/train-v3/data --out /tmp/prep --max-iters 1 --val 0 \
#       --config scripts/recipes/cpu-3.0.0.yaml --set data.cache_dir=.gpu/cache
#   tar cf - -C .gpu cache | xz -T2 -3 > .gpu/cache.tar.xz
# On the device (repository root):   scripts/device_default_model_v3.sh   -> $OUT/<piece>.tar
# Back here: unpack each piece's model/ into out/train-v3/<piece>/ and run
#   scripts/evaluate_default_model.sh ../shared/data out/eval protocol   (TRAIN=out/train-v3)
set -uo pipefail
W=${W:-/tmp/vox}
OUT=${OUT:-$W/out}
STEPS=${STEPS:-1500}
TIME=${TIME:-540}
WORKERS=${WORKERS:-8}
PIECES=${PIECES:-fold0 fold1 fold2 fold3 fold4 all}
RECIPE=${RECIPE:-scripts/recipes/cpu-3.0.0-nojitter.yaml}
SPLITS=docs/results/v3/splits.json
export PYTHONPATH=$W/site:$PWD/VoxMMSDSegmentation PYTHONUNBUFFERED=1
PY=${PY:-python3}
mkdir -p "$W" "$OUT"
if [ ! -d "$W/cache" ]; then
  xz -dc .gpu/cache.tar.xz | tar xf - -C "$W" || { echo "no .gpu/cache.tar.xz (see the header)"; exit 3; }
fi
DATA=$(ls -d "$W"/cache/*/ | head -1)
echo "data: $DATA ($(ls "$DATA" | grep -c image.npy) cases)"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())" || exit 4
deadline=$(( $(date +%s) + TIME ))
for piece in $PIECES; do
  left=$(( deadline - $(date +%s) ))
  [ "$left" -gt 30 ] || { echo "out of time before $piece"; break; }
  run="$W/$piece"
  if [ -f "$run/model/model.json" ]; then echo "$piece: done"; continue; fi
  if [ "$piece" = all ]; then
    train=$($PY -c 'import json,sys; print(",".join(sorted(c for f in json.load(open(sys.argv[1]))["folds"] for c in f)))' "$SPLITS")
  else
    train=$($PY -c 'import json,sys; f=json.load(open(sys.argv[1]))["folds"]; k=int(sys.argv[2]); print(",".join(sorted(c for i,x in enumerate(f) if i!=k for c in x)))' "$SPLITS" "${piece#fold}")
  fi
  t0=$(date +%s)
  if [ -f "$run/checkpoints/last.pt" ]; then
    timeout -s TERM "$left" $PY -m voxmmsd finetune --resume "$run" 2>&1 | tail -n 4
  else
    timeout -s TERM "$left" $PY -m voxmmsd finetune --data "$DATA" --out "$run" --train "$train" --val 0 \
      --config "$RECIPE" --max-iters "$STEPS" --device cuda \
      --set data.workers="$WORKERS" --set train.epoch_iters=250 --set train.log_every=100 \
      --set package.model_id=voxmmsd-brats-default --set package.version=3.0.0 2>&1 | tail -n 4
  fi
  echo "$piece: $(( $(date +%s) - t0 )) s"
  [ -f "$run/model/model.json" ] && tar cf "$OUT/$piece.tar" -C "$run" model config.yaml metrics.csv
done
ls -la "$OUT"

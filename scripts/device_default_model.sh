#!/usr/bin/env bash
# The training run of the bundled default model on a lent GPU machine (one H200), as it was
# executed (docs/model-card.md). The images were preprocessed here into the cache
# (voxmmsd.data.cache; 1 mm, brain crop, 99.9th-percentile scaling, uint8) and shipped as
# .gpu/cache.part.* because the machine has no copy of the data; Python packages it lacks
# were installed into /tmp/vox/site beforehand. Everything else is the ordinary CLI.
#
# Equivalent on any machine holding the images:
#   voxmmsd pretrain --data ../shared/data --out RUN/pretrain --max-iters $PT_ITERS
#   voxmmsd finetune --data ../shared/data/brats2018 --out RUN/finetune --init RUN/pretrain \
#       --val $VAL --max-iters $FT_ITERS --set data.sequence_dropout=0.25 ...
set -uo pipefail
W=${W:-/tmp/vox}
OUT=${OUT:-$W/out}
PT_ITERS=${PT_ITERS:-700}
PT_TIME=${PT_TIME:-150}
FT_ITERS=${FT_ITERS:-3500}
FT_TIME=${FT_TIME:-330}
WORKERS=${WORKERS:-12}
PATCH=${PATCH:-[96,96,96]}
CROP=${CROP:-96,96,96}
NET=${NET:-}
EPOCH=${EPOCH:-500}
VAL=Brats18_CBICA_ALU_1,Brats18_TCIA02_606_1,Brats18_2013_20_1
export PYTHONPATH=$W/site:$PWD/VoxMMSDSegmentation PYTHONUNBUFFERED=1
PY=${PY:-python3}
mkdir -p "$W" "$OUT"
if [ ! -d "$W/cache" ]; then
  cat "$W/cache.part.aa" .gpu/cache.part.ab | xz -dc | tar xf - -C "$W" || exit 3
fi
DATA=$(ls -d "$W"/cache/*/ | head -1)
echo "data: $DATA ($(ls "$DATA" | grep -c image.npy) cases)"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')"
NETSET=()
[ -n "$NET" ] && NETSET=(--set "network.channels=$NET")
FNETSET=()
[ -n "$NET" ] && FNETSET=(--set "network.channels=[$NET]")

t0=$(date +%s)
timeout -s TERM "$PT_TIME" $PY -m voxmmsd pretrain --data "$DATA" --out "$W/pretrain" --max-iters "$PT_ITERS" \
  --no-progress --set data.workers="$WORKERS" --set data.patch_size="$CROP" --set train.log_every=50 --set train.checkpoint_every=200 \
  "${NETSET[@]}" 2>&1 | grep -vE "progress" | tail -n 12
echo "pretrain: $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
timeout -s TERM "$FT_TIME" $PY -m voxmmsd finetune --data "$DATA" --out "$W/finetune" --init "$W/pretrain" \
  --val "$VAL" --max-iters "$FT_ITERS" --set data.workers="$WORKERS" --set data.sequence_dropout=0.25 \
  --set data.patch_size="$PATCH" --set train.epoch_iters="$EPOCH" --set train.log_every=100 \
  --set package.model_id=voxmmsd-brats-default --set package.onnx=false "${FNETSET[@]}" 2>&1 | tail -n 25
echo "finetune: $(( $(date +%s) - t1 )) s"
$PY scripts/collect_run.py pack "$W/finetune" "$OUT" --logs-from "$W/pretrain" 2>&1 | tail -n 3
if [ -d "$W/finetune/model" ] && [ -n "${SAMPLE_SEG:-1}" ]; then
  for i in 1 2 3; do
    $PY -m voxmmsd -q segment VoxMMSDSegmentation/Resources/Sample/BraTS18-sample --out "$W/seg$i" \
      --model "$W/finetune/model" --backend torch --device auto 2>&1 | tail -n 3
    cp "$W/seg$i/report.json" "$OUT/gpu_report$i.json" 2>/dev/null
  done
fi
ls -la "$OUT"

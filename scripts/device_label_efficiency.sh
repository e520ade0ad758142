#!/usr/bin/env bash
# The label-efficiency experiment at full size on a lent GPU machine (one H200), prepared for
# issue 11 and NOT yet run (no GPU was lent to that session). Sized to ~10 minutes:
# pre-training ~2.5 min (PT_ITERS at ~7 it/s, the bundled model's measured H200 speed),
# then 18 fine-tuning runs (2 arms x N = 2, 4, 9 x 3 repeats) of FT_ITERS iterations at
# ~8-10 it/s (~20-25 s each) plus scoring the 3 held-out cases.
#
# Needs on the machine: the labelled cases in $DATA (e.g. /work/shared/data/brats2018,
# 98 MB: ship it as an ignored, carried archive the way scripts/device_default_model.sh
# ships its cache) and the engine's Python packages. Outputs under $OUT:
#   pretrain.events.jsonl (distillation loss and the collapse diagnostics per 50 iterations),
#   le/summary.csv, le/paired.csv, le/results.csv, le/label_efficiency.png, le/experiment.yaml.
#
# Equivalent on any machine:
#   voxmmsd pretrain --data DATA --out RUN/pt --max-iters $PT_ITERS
#   voxmmsd experiment label-efficiency --data DATA --out RUN/le --init RUN/pt --sizes 2,4,9 --repeats 3 \
#       --test $TEST --max-iters $FT_ITERS --set train.lr_warmup=0.25
set -uo pipefail
W=${W:-/tmp/vox-le}
OUT=${OUT:-$W/out}
DATA=${DATA:-$W/data}
PT_ITERS=${PT_ITERS:-1000}
PT_TIME=${PT_TIME:-200}
FT_ITERS=${FT_ITERS:-200}
LE_TIME=${LE_TIME:-480}
WORKERS=${WORKERS:-12}
TEST=${TEST:-Brats18_CBICA_ALU_1,Brats18_TCIA02_606_1,Brats18_2013_20_1}
export PYTHONPATH=${PYTHONPATH:-}:$PWD/VoxMMSDSegmentation PYTHONUNBUFFERED=1
PY=${PY:-python3}
mkdir -p "$W" "$OUT"
if [ ! -d "$DATA" ]; then
  echo "no labelled cases in $DATA (set DATA=...)"; exit 3
fi
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"

t0=$(date +%s)
# paper settings (96^3 crops, channels 32-512, 1024 pairs, bf16) and this project's default head
timeout -s TERM "$PT_TIME" $PY -m voxmmsd pretrain --data "$DATA" --out "$W/pt" --max-iters "$PT_ITERS" \
  --no-progress --set data.workers="$WORKERS" --set train.log_every=50 --set train.checkpoint_every=500 2>&1 | tail -n 8
cp "$W/pt/events.jsonl" "$OUT/pretrain.events.jsonl" 2>/dev/null
echo "pretrain: $(( $(date +%s) - t0 )) s"
t1=$(date +%s)
timeout -s TERM "$LE_TIME" $PY -m voxmmsd experiment label-efficiency --data "$DATA" --out "$W/le" --init "$W/pt" \
  --sizes 2,4,9 --repeats 3 --test "$TEST" --max-iters "$FT_ITERS" --device cuda \
  --set data.workers="$WORKERS" --set train.epoch_iters=100 --set train.lr_warmup=0.25 \
  --set package.onnx=false 2>&1 | tail -n 30
echo "label-efficiency: $(( $(date +%s) - t1 )) s"
mkdir -p "$OUT/le"
cp "$W"/le/*.csv "$W"/le/*.png "$W"/le/experiment.yaml "$OUT/le/" 2>/dev/null
ls -la "$OUT" "$OUT/le"

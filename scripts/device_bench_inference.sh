#!/usr/bin/env bash
# GPU end-to-end check for a lent GPU machine (issue: "<= 2 s end to end per case").
# Prepared as one short script: it needs only the repository, PyTorch with CUDA and the
# engine's dependencies (on the lent machine they were installed into $W/site from
# wheels carried in .whl/; elsewhere use the ordinary .venv).
#
#   1. cold: three separate `voxmmsd segment` processes on the bundled sample case
#      (each pays for CUDA start-up and loading the model);
#   2. warm: one `voxmmsd segment --batch` over N (default 4) copies of the sample, so the model is
#      loaded once, as in a cohort run; per-case timings come from each report.json, and the
#      batch's wall time gives cases per hour.
# Prints read/preprocess/inference/postprocess/plausibility/write and their sum for every run.
#
# The model: MODEL=<package folder or id> (default: the bundled default). For the low-resolution
# candidate: MODEL=pieces/v3/fold0. BACKENDS="torch onnx" also runs the ONNX Runtime path (CUDA
# provider when onnxruntime-gpu is installed; a package without model.onnx is exported first
# into $W/onnx-model with the project's own export code, scripts/package_cpu_model.py).
set -uo pipefail
W=${W:-/tmp/vox}
export PYTHONPATH=$W/site:$PWD/VoxMMSDSegmentation PYTHONUNBUFFERED=1
PY=${PY:-python3}
SAMPLE=VoxMMSDSegmentation/Resources/Sample/BraTS18-sample
MODEL=${MODEL:-Resources/models/voxmmsd-brats-default}
BACKENDS=${BACKENDS:-torch}
N=${N:-4}
mkdir -p "$W/batch"
$PY -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
summary() {
  $PY - "$@" <<'PYEOF'
import json, sys
for path in sys.argv[1:]:
    r = json.load(open(path))
    t = r["timings_s"]
    print(f"{r['case_id']:>14} {r['run']['device']:>7} {r['run']['mode']:>8} "
          + " ".join(f"{k}={v:.3f}" for k, v in t.items()) + f"  total={sum(t.values()):.3f} s")
PYEOF
}
for b in $BACKENDS; do
  M=$MODEL
  if [ "$b" = onnx ] && [ -d "$MODEL" ] && [ ! -f "$MODEL/model.onnx" ]; then
    $PY scripts/package_cpu_model.py "$MODEL" "$W/onnx-model" --name "$MODEL with ONNX" \
      --description "exported for the device benchmark" >/dev/null && M=$W/onnx-model
  fi
  for i in 1 2 3; do
    s=$(date +%s.%N)
    $PY -m voxmmsd -q segment "$SAMPLE" --out "$W/cold-$b-$i" --model "$M" --backend "$b" --device auto --progress none
    echo "cold run $i ($b): process wall $(echo "$(date +%s.%N) - $s" | bc) s"
    summary "$W/cold-$b-$i/report.json"
  done
done
for i in $(seq 1 "$N"); do  # N copies under their own case names
  mkdir -p "$W/batch/case$i"
  for f in "$SAMPLE"/*_t1.nii.gz "$SAMPLE"/*_t1ce.nii.gz "$SAMPLE"/*_t2.nii.gz "$SAMPLE"/*_flair.nii.gz; do
    b=$(basename "$f"); cp "$f" "$W/batch/case$i/case${i}_${b#BraTS18-sample_}"
  done
done
s=$(date +%s.%N)
$PY -m voxmmsd -q segment --batch "$W/batch" --out "$W/warm" --model "$MODEL" --device auto --progress none
wall=$(echo "$(date +%s.%N) - $s" | bc)
echo "warm batch of $N cases: $wall s = $(echo "3600 * $N / $wall" | bc) cases/hour (model loading included)"
summary "$W"/warm/*/report.json

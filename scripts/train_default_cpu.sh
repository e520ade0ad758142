#!/usr/bin/env bash
# Train the bundled default model 2.1.0 on the CPU, the way docs/model-card.md says it was made:
# the full-size model 1.0.0 continued for 150 iterations on all 22 labelled development cases
# with the warm-start recipe (scripts/recipes/cpu-warm-2.1.0.yaml: 64^3 patches, lr 2e-4,
# simulated clinical acquisitions, sequence dropout), then packaged with float16 weights, ONNX,
# checksums, and the component rules the cross-validation chose (inference.min_component_ml,
# inference.min_et_component_ml).
#
#   scripts/train_default_cpu.sh [DATA] [WORK] [DEST]
#     DATA  the development data (default ../shared/data: brats2018/ and extra/)
#     WORK  working folder (default out/train-default)
#     DEST  package folder to write (default out/train-default/package; the bundled one is
#           Resources/models/voxmmsd-brats-default/)
# About 15 minutes on 2 idle CPU cores. Needs .venv (scripts/setup.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${1:-../shared/data}
WORK=${2:-out/train-default}
DEST=${3:-$WORK/package}
PY=${PY:-.venv/bin/python}
VX=${VOXMMSD:-.venv/bin/voxmmsd}
MIN_COMPONENT_ML=${MIN_COMPONENT_ML:-20}        # chosen by nested cross-validation (docs/model-card.md)
MIN_ET_COMPONENT_ML=${MIN_ET_COMPONENT_ML:-1}
START=${START:-Resources/models/voxmmsd-brats-default/1.0.0}
mkdir -p "$WORK"
"$VX" experiment crossval splits --source brats2018="$DATA/brats2018" --source extra="$DATA/extra" \
    --out "$WORK/splits.json" --data-out "$WORK/data" > /dev/null
if [ ! -f "$WORK/run/model/model.json" ]; then
  "$VX" finetune --data "$WORK/data" --out "$WORK/run" --val 0 --config scripts/recipes/cpu-warm-2.1.0.yaml \
      --set init.path="$START" --set data.cache_dir="$WORK/cache" \
      --set package.model_id=voxmmsd-brats-default --set package.version=2.1.0
fi
$PY scripts/package_cpu_model.py "$WORK/run/model" "$DEST" --version 2.1.0 \
    --inference min_component_ml="$MIN_COMPONENT_ML" --inference min_et_component_ml="$MIN_ET_COMPONENT_ML" \
    --inference "fallback_when_missing={t2w: voxmmsd-brats-default@1.0.0, t2f: voxmmsd-brats-default@1.0.0}" \
    --training-extra docs/results/default-model/2.1.0-training.json \
    --metrics docs/results/default-model/2.1.0-metrics.json \
    --name "VoxMMSD BraTS default 2.1.0 (1.0.0 continued on 22 cases, CPU)" \
    --description "Research model: the full-size U-Net 1.0.0 (32-512 channels, 1 mm) continued for 150 iterations on the CPU on all 22 labelled development cases (BraTS 2018, 2021, 2023) with simulated clinical acquisitions and sequence dropout; tumour components under ${MIN_COMPONENT_ML} mL are removed and ET components under ${MIN_ET_COMPONENT_ML} mL relabelled NETC, the largest always kept. NOT for clinical use."

#!/usr/bin/env bash
# Create .venv with everything the engine, the tests and training need (CPU PyTorch).
# GPU users: see README ("GPU") for the CUDA build of PyTorch.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
# torch is pinned: an unpinned torch pulls a multi-GB CUDA build.
.venv/bin/python -m pip install -q "torch==${VOXMMSD_TORCH_VERSION:-2.13.0}" ${VOXMMSD_TORCH_INDEX:+--index-url "$VOXMMSD_TORCH_INDEX"}
.venv/bin/python -m pip install -q -e '.[torch,dev]'
echo "VoxMMSD environment ready in .venv ($(.venv/bin/voxmmsd --version))"

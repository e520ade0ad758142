#!/usr/bin/env bash
# Set up (if needed) and segment the bundled real sample case with the bundled default model.
# Outputs: out/sample/segmentation.nii.gz, segmentation.seg.nrrd, report.json, qc.png
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/voxmmsd inspect VoxMMSDSegmentation/Resources/Sample/BraTS18-sample
# --overwrite: out/sample is this script's own folder, so a second run replaces the first one's result
.venv/bin/voxmmsd segment VoxMMSDSegmentation/Resources/Sample/BraTS18-sample --out out/sample --overwrite "$@"
echo "Done: see out/sample/ (report.json, qc.png, segmentation.seg.nrrd for Slicer)"

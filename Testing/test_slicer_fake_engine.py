"""A test double of the engine's ``voxmmsd segment`` process, for the Slicer-side tests only.

Run as ``python test_slicer_fake_engine.py segment --t1c F ... --out DIR --progress json``.
It reads the reference image with the real ``voxmmsd.io`` reader, writes a real label
map on its grid (``segmentation.seg.nrrd``, ``segmentation.nii.gz``, ``report.json``)
with the real writers, and prints the engine's JSON events. ``FAKE_ENGINE_MODE``
chooses a behaviour: ``ok`` (default), ``slow`` (starts a grandchild, then sleeps:
for cancel tests), ``fail`` (error event, exit 1), ``corrupt`` (a damaged .seg.nrrd),
``nifti`` (only the NIfTI label map), ``implausible`` (the report's plausibility verdict is
implausible: a real :class:`voxmmsd.plausibility.verdict.Assessment` with a failing check; with
``--on-implausible refuse`` it writes the report and no label map, and exits 3 as the engine
does). ``FAKE_ENGINE_PIDS`` names a file that receives
the pids of the process and its grandchild.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from support.slicer_scene import phantom_label


def implausible_record() -> dict:
    """The engine's report.json ``plausibility`` record of a result whose T2w and FLAIR were swapped:
    the real check records, graded by the real limits."""
    from voxmmsd.plausibility import sequences, spatial
    from voxmmsd.plausibility.record import measured
    from voxmmsd.plausibility.verdict import Assessment, verdict_of

    checks = (measured("t2w_vs_flair", "sequences", -0.45, sequences.LIMITS["t2w_vs_flair"],
                       sequences.MEANINGS["t2w_vs_flair"]),
              measured("tumour_found", "spatial", 40.0, spatial.LIMITS["tumour_found"],
                       spatial.MEANINGS["tumour_found"]))
    return Assessment(verdict_of(checks), checks).to_dict()


def main(argv: list) -> int:
    from voxmmsd.infer.options import add_arguments
    from voxmmsd.io.geometry import Geometry
    from voxmmsd.io.labels import volumes_ml
    from voxmmsd.io.reader import read_image
    from voxmmsd.io.writer import write_label_nifti, write_seg_nrrd

    p = argparse.ArgumentParser()
    p.add_argument("command")
    for key in ("t1n", "t1c", "t2w", "t2f"):
        p.add_argument(f"--{key}")
    p.add_argument("--out", required=True)
    p.add_argument("--progress")
    add_arguments(p)  # the engine's own segmentation options: the fake accepts exactly what the real one does
    args = p.parse_args(argv)
    mode = os.environ.get("FAKE_ENGINE_MODE", "ok")

    def emit(event: str, **fields) -> None:
        sys.stdout.write(json.dumps({"time": time.time(), "stage": "segment", "event": event, **fields}) + "\n")
        sys.stdout.flush()

    emit("start", message="fake engine")
    print("a log line that is not an event", flush=True)
    if mode == "slow":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
        if os.environ.get("FAKE_ENGINE_PIDS"):
            Path(os.environ["FAKE_ENGINE_PIDS"]).write_text(json.dumps([os.getpid(), child.pid]))
        for i in range(600):
            emit("progress", iteration=i, total=600, message="working")
            time.sleep(0.5)
        return 0
    if mode == "fail":
        emit("error", message="T1c image is empty: fake failure")
        return 1
    reference = args.t1c or args.t1n or args.t2w or args.t2f
    geometry = Geometry.of(read_image(Path(reference), "reference"))
    label = phantom_label(geometry.shape)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    def stage(name: str, **fields) -> None:
        sys.stdout.write(json.dumps({"time": time.time(), "stage": name, "event": "progress", **fields}) + "\n")
        sys.stdout.flush()

    for name in ("read", "check", "preprocess"):
        stage(name, iteration=1, total=1)
    for i in range(1, 5):  # the engine's per-window progress
        stage("predict", iteration=i, total=4, message=f"window {i}/4")
    stage("postprocess", iteration=1, total=1)
    emit("warning", message="fake warning: FLAIR resampled onto the T1c grid")
    unsure = {"kind": "uncertainty", "message": "fake: 31% of the tumour voxels are uncertain"}
    emit("warning", **unsure)
    plausibility = implausible_record() if mode == "implausible" else None
    if plausibility is not None and args.on_implausible == "refuse":
        (out / "report.json").write_text(json.dumps({
            "case_id": "fake", "model": {"id": "fake", "version": "0"}, "refused": True,
            "volumes_ml": volumes_ml(label, geometry.voxel_volume_ml), "plausibility": plausibility,
            "warnings": [{"kind": "plausibility", "message": "IMPLAUSIBLE segmentation (fake)"}], "outputs": {},
            "arguments": argv}))
        emit("error", message="Refused (--on-implausible refuse): no label map written", refused=True)
        return 3
    stage("write", iteration=0, total=1)
    outputs = {"nifti": str(write_label_nifti(label, geometry, out / "segmentation.nii.gz"))}
    if mode == "corrupt":
        (out / "segmentation.seg.nrrd").write_bytes(b"NRRD0004\nthis is not a segmentation\n")
        outputs["seg_nrrd"] = str(out / "segmentation.seg.nrrd")
    elif mode != "nifti":
        outputs["seg_nrrd"] = str(write_seg_nrrd(label, geometry, out / "segmentation.seg.nrrd"))
    report = {"case_id": "fake", "model": {"id": "fake", "version": "0"},
              "volumes_ml": volumes_ml(label, geometry.voxel_volume_ml),
              "warnings": [{"kind": "resampled", "message": "fake warning: FLAIR resampled onto the T1c grid"},
                           unsure, {"kind": "thick_slices", "message": "fake: T2 has 6 mm slices"}],
              "inputs": {k: getattr(args, k) for k in ("t1n", "t1c", "t2w", "t2f")}, "outputs": outputs,
              "arguments": argv}
    if plausibility is not None:
        report["plausibility"] = plausibility
        report["warnings"].insert(0, {"kind": "plausibility", "message": "IMPLAUSIBLE segmentation (fake)"})
    (out / "report.json").write_text(json.dumps(report))
    emit("done", outputs=outputs)
    return 0


def test_phantom_label_has_every_tumour_label():
    label = phantom_label((20, 22, 24))
    assert set(np.unique(label)) == {0, 1, 2, 3}


@pytest.mark.parametrize("shape", [(8, 9, 10)])
def test_phantom_label_shape(shape):
    assert phantom_label(shape).shape == shape


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

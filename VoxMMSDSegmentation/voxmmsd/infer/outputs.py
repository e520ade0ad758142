"""Write a prediction: NIfTI label map, Slicer ``.seg.nrrd``, ``report.json`` and a QC picture.

All files are written into a hidden staging folder inside the output folder first and
moved into place only when every one of them is complete; ``report.json`` comes last,
so its presence marks a finished case.
"""

from __future__ import annotations

import logging
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, Iterable, Optional

from voxmmsd import __version__
from voxmmsd.infer.postprocess import to_convention
from voxmmsd.infer.qc import write_qc_png
from voxmmsd.io.atomic import ensure_writable_dir, write_json
from voxmmsd.io.labels import BRATS2023, LABEL_TABLE, LabelInfo
from voxmmsd.io.writer import write_label_nifti, write_seg_nrrd

log = logging.getLogger(__name__)

SEGMENTATION_NIFTI = "segmentation.nii.gz"
SEGMENTATION_NRRD = "segmentation.seg.nrrd"
REPORT = "report.json"
QC_PNG = "qc.png"
OUTPUT_FILES = (SEGMENTATION_NIFTI, SEGMENTATION_NRRD, QC_PNG, REPORT)


def software_versions() -> Dict[str, str]:
    """Versions of the libraries inference used (those importable without loading PyTorch)."""
    import importlib.metadata as md

    out = {"voxmmsd": __version__, "python": platform.python_version()}
    for pkg in ("numpy", "SimpleITK", "onnxruntime", "torch", "scipy"):
        try:
            out[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            continue
    return out


def build_report(prediction: Any, model: Dict[str, str], outputs: Dict[str, str], convention: str,
                 extra: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
    report = {
        "case_id": prediction.case_id,
        "model": model,
        "volumes_ml": {k: round(float(v), 4) for k, v in prediction.volumes_ml.items()},
        "warnings": list(prediction.warnings),
        "timings_s": {k: round(float(v), 3) for k, v in prediction.timings_s.items()},
        "software": software_versions(),
        "inputs": prediction.inputs,
        "outputs": outputs,
        "label_convention": convention,
        "run": prediction.run,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    report.update(extra or {})
    return report


def write_outputs(prediction: Any, out_dir: Path, model: Dict[str, str],
                  table: Iterable[LabelInfo] = LABEL_TABLE, convention: str = BRATS2023,
                  qc: bool = True, extra: Optional[Dict[str, Any]] = None) -> Dict[str, str]:
    """Write every output of ``prediction`` into ``out_dir``; return {kind: path}.

    A failure leaves ``out_dir`` as it was (earlier complete outputs stay; nothing half-written).
    """
    t0 = time.perf_counter()
    out_dir = ensure_writable_dir(Path(out_dir))
    table = tuple(table)
    label = to_convention(prediction.label, convention)
    # the .seg.nrrd keeps the internal values with their names; legacy only changes the NIfTI values
    stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=str(out_dir)))
    try:
        write_label_nifti(label, prediction.geometry, stage / SEGMENTATION_NIFTI)
        write_seg_nrrd(prediction.label, prediction.geometry, stage / SEGMENTATION_NRRD, table)
        if qc:
            write_qc_png(stage / QC_PNG, prediction.reference_image, prediction.label, prediction.geometry.spacing,
                         f"{prediction.case_id}: {model.get('id', '')} {model.get('version', '')}", table)
        outputs = {"segmentation": str(out_dir / SEGMENTATION_NIFTI), "seg_nrrd": str(out_dir / SEGMENTATION_NRRD)}
        if qc:
            outputs["qc"] = str(out_dir / QC_PNG)
        outputs["report"] = str(out_dir / REPORT)
        timings = dict(prediction.timings_s)
        timings["write"] = time.perf_counter() - t0
        prediction.timings_s = timings
        report = build_report(prediction, model, outputs, convention, extra)
        write_json(stage / REPORT, report)
        for name in OUTPUT_FILES:
            if (stage / name).exists():
                os.replace(stage / name, out_dir / name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return outputs

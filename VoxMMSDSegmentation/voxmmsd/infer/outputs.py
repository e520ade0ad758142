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

import numpy as np

from voxmmsd import __version__
from voxmmsd.infer.postprocess import to_convention
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


def tumour_centre(label: np.ndarray, fallback: np.ndarray) -> tuple:
    """Index (z, y, x) of the tumour's centre of mass, else of the non-zero ``fallback`` voxels, else the middle."""
    for mask in (label > 0, fallback != 0):
        idx = np.argwhere(mask)
        if idx.size:
            return tuple(int(v) for v in np.round(idx.mean(axis=0)))
    return tuple(s // 2 for s in label.shape)


def write_qc_png(path: Path, image: np.ndarray, label: np.ndarray, spacing_xyz: Iterable[float],
                 title: str, table: Iterable[LabelInfo] = LABEL_TABLE) -> Path:
    """Three orthogonal planes through the tumour with the segmentation overlaid (matplotlib, Agg)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    sx, sy, sz = spacing_xyz
    z, y, x = tumour_centre(label, image)
    lo, hi = np.percentile(image[image != 0], (0.5, 99.5)) if np.any(image) else (0.0, 1.0)
    colors = np.zeros((256, 4), dtype=float)
    for info in table:
        colors[info.value, :3] = info.color
        colors[info.value, 3] = 0.45
    planes = [("axial", image[z], label[z], sy / sx), ("coronal", image[:, y], label[:, y], sz / sx),
              ("sagittal", image[:, :, x], label[:, :, x], sz / sy)]
    fig = Figure(figsize=(12, 4.4), dpi=100)
    for i, (name, img, lab, aspect) in enumerate(planes):
        ax = fig.add_subplot(1, 3, i + 1)
        origin = "upper" if name == "axial" else "lower"
        ax.imshow(img, cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, aspect=aspect, origin=origin,
                  interpolation="nearest")
        ax.imshow(colors[lab], aspect=aspect, origin=origin, interpolation="nearest")
        ax.set_title(name)
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(str(path), format="png")
    return path


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

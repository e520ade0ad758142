"""Is an acquisition like what the model saw? Warnings for thick slices and unusual voxel sizes, and the
working grid the network runs on.

The models are trained on BraTS images: every sequence co-registered and resampled to 1 mm
isotropic voxels. A clinical exam with 5 mm slices is outside that: even resampled to 1 mm its
slices hold five times less detail through the plane, partial volume blurs small structures,
and tumour borders across slices are guesses. The result is still useful, but the report must
say so (``warnings`` of kind ``thick_slices`` / ``voxel_size``).

The network itself runs on a 1 mm grid whenever the reference grid is far from 1 mm (an axis
over 2 mm or under 0.5 mm; the segmentation is then resampled back onto the reference grid),
so that its receptive field means in millimetres what it meant in training.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Dict, List, Mapping, Sequence

from voxmmsd.preprocessing import PreprocessConfig

#: voxel spacing (mm, x y z) of the training images (BraTS)
TRAINED_SPACING = (1.0, 1.0, 1.0)
#: a slice thicker than this (mm) is outside what the model saw
MAX_SLICE_MM = 2.5
#: voxels larger than this (mm^3) are outside what the model saw
MAX_VOXEL_MM3 = 3.0
#: voxels finer than this in every direction (mm) are unlike the training data too (less so)
MIN_SPACING_MM = 0.4
#: the network runs on the training spacing when the reference's differs by more than this factor along an axis
RESAMPLE_FACTOR = 2.0


def acquisition_warnings(spacings: Mapping[str, Sequence[float]], names: Mapping[str, str]) -> List[Dict[str, str]]:
    """Warnings ``{"kind", "message"}`` for the sequences (key -> spacing x, y, z in mm) outside the training
    acquisitions: ``thick_slices`` (a spacing above :data:`MAX_SLICE_MM`) and ``voxel_size`` (voxels above
    :data:`MAX_VOXEL_MM3`, or finer than :data:`MIN_SPACING_MM` everywhere)."""
    out: List[Dict[str, str]] = []
    thick = {k: s for k, s in spacings.items() if max(s) > MAX_SLICE_MM}
    if thick:
        listed = ", ".join(f"{names.get(k, k)} {_mm(s)}" for k, s in thick.items())
        out.append({"kind": "thick_slices", "message": (
            f"Thick slices: {listed}. The model was trained on 1 mm isotropic images (BraTS); with slices of "
            f"{max(max(s) for s in thick.values()):.1f} mm the tumour's extent across slices is uncertain and small "
            f"parts can be missed. Check the segmentation slice by slice; a thin-slice (3-D) acquisition gives "
            f"more reliable results.")})
    big = {k: s for k, s in spacings.items() if k not in thick and _volume(s) > MAX_VOXEL_MM3}
    fine = {k: s for k, s in spacings.items() if max(s) < MIN_SPACING_MM}
    if big or fine:
        listed = ", ".join(f"{names.get(k, k)} {_mm(s)}" for k, s in {**big, **fine}.items())
        out.append({"kind": "voxel_size", "message": (
            f"Voxel size outside the training data (1 mm isotropic): {listed}. The images are resampled, but "
            f"expect lower accuracy.")})
    return out


def working_preprocessing(cfg: PreprocessConfig, spacing_xyz: Sequence[float]) -> PreprocessConfig:
    """The package's preprocessing, made to run the network on :data:`TRAINED_SPACING` when the reference grid's
    ``spacing_xyz`` is far from it (and the package does not resample by itself)."""
    if cfg.spacing is not None:
        return cfg
    far = any(max(s / t, t / s) > RESAMPLE_FACTOR for s, t in zip(spacing_xyz, TRAINED_SPACING))
    return replace(cfg, spacing=TRAINED_SPACING) if far else cfg


def _volume(spacing: Sequence[float]) -> float:
    v = 1.0
    for s in spacing:
        v *= float(s)
    return v


def _mm(spacing: Sequence[float]) -> str:
    return "x".join("%.3g" % float(s) for s in spacing) + " mm"

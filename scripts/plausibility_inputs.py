"""Wrong results for calibrating the plausibility checks, built from labelled cases (numpy only).

Used by ``scripts/calibrate_plausibility.py``. Each builder takes a case's images (sequence ->
(z, y, x) float32 array) and/or its label map and returns the deliberately wrong version; the
pipeline-shifted inputs (z-scored intensities, thick slices) are written as case folders that
``voxmmsd segment --batch`` segments like any other.
"""

from __future__ import annotations

from pathlib import Path
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

Images = Dict[str, np.ndarray]


def swapped(images: Mapping[str, np.ndarray], a: str, b: str) -> Images:
    """``images`` with sequences ``a`` and ``b`` given for each other."""
    out = dict(images)
    out[a], out[b] = images[b], images[a]
    return out


def label_as_sequence(images: Mapping[str, np.ndarray], label: np.ndarray, sequence: str) -> Images:
    """``images`` with the label map given as ``sequence`` (a label file passed as --t2f)."""
    out = dict(images)
    out[sequence] = label.astype(np.float32)
    return out


def foreign(images: Mapping[str, np.ndarray], other: Mapping[str, np.ndarray], sequence: str) -> Images:
    """``images`` with ``sequence`` taken from another case (same grid: all cases are on SRI24)."""
    out = dict(images)
    out[sequence] = other[sequence]
    return out


def shifted_label(label: np.ndarray, spacing_zyx: Sequence[float], mm: float, axis: int,
                  brain: np.ndarray) -> np.ndarray:
    """``label`` moved by ``mm`` along array ``axis`` towards the brain's centre, then cut to the brain
    (the predictor sets voxels outside the brain to background)."""
    steps = int(round(mm / float(spacing_zyx[axis])))
    centre = np.argwhere(brain)[:, axis].mean()
    tumour = np.argwhere(label > 0)[:, axis].mean() if label.any() else centre
    direction = 1 if tumour < centre else -1
    out = np.zeros_like(label)
    src = [slice(None)] * 3
    dst = [slice(None)] * 3
    if direction > 0:
        src[axis], dst[axis] = slice(0, label.shape[axis] - steps), slice(steps, None)
    else:
        src[axis], dst[axis] = slice(steps, None), slice(0, label.shape[axis] - steps)
    out[tuple(dst)] = label[tuple(src)]
    out[~brain] = 0
    return out


def zscored(image: np.ndarray) -> np.ndarray:
    """Z-scored intensities inside the non-zero voxels, background 0 (another pipeline's normalisation)."""
    mask = image != 0
    out = np.zeros(image.shape, np.float32)
    values = image[mask].astype(np.float64)
    if values.size:
        out[mask] = ((values - values.mean()) / (values.std() or 1.0)).astype(np.float32)
    return out


def thick(image: np.ndarray, factor: int, axis: int = 0) -> np.ndarray:
    """Slices ``factor`` times thicker along ``axis``: the mean of each run of ``factor`` slices
    (the partial-volume averaging of a thick-slice acquisition); a last partial run is dropped."""
    n = image.shape[axis] // factor
    moved = np.moveaxis(image, axis, 0)[: n * factor].astype(np.float32)
    blocks = moved.reshape((n, factor) + moved.shape[1:]).mean(axis=1)
    return np.moveaxis(blocks, 0, axis)


def thick_label(label: np.ndarray, factor: int, axis: int = 0) -> np.ndarray:
    """The label map sampled at the middle slice of each thick slice (for scoring on the thick grid)."""
    n = label.shape[axis] // factor
    index = np.arange(n) * factor + factor // 2
    return np.take(label, index, axis=axis)


def thick_geometry(geometry, factor: int):
    """The grid of :func:`thick` along the array's first axis (the k axis of the image)."""
    from voxmmsd.io.geometry import Geometry

    size = (geometry.size[0], geometry.size[1], geometry.size[2] // factor)
    spacing = (geometry.spacing[0], geometry.spacing[1], geometry.spacing[2] * factor)
    d = np.asarray(geometry.direction, float).reshape(3, 3)
    origin = np.asarray(geometry.origin) + d[:, 2] * geometry.spacing[2] * (factor - 1) / 2.0
    return Geometry(size, spacing, tuple(float(v) for v in origin), geometry.direction)  # type: ignore[arg-type]


def write_case(folder: Path, case_id: str, images: Mapping[str, np.ndarray], geometry,
               label: Optional[np.ndarray] = None) -> Path:
    """Write ``images`` (and ``label``) as a BraTS 2023-named case folder."""
    from voxmmsd.io.writer import write_image, write_label_nifti

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for key, arr in images.items():
        write_image(np.asarray(arr, np.float32), geometry, folder / f"{case_id}-{key}.nii.gz")
    if label is not None:
        write_label_nifti(label, geometry, folder / f"{case_id}-seg.nii.gz")
    return folder


def shifted_inputs(images: Mapping[str, np.ndarray], label: np.ndarray, geometry,
                   kind: str, factor: int = 5) -> Tuple[Images, np.ndarray, object]:
    """The inputs of a pipeline shift ``kind`` (``zscore`` or ``thick``): images, label map and grid."""
    if kind == "zscore":
        return {k: zscored(v) for k, v in images.items()}, label, geometry
    if kind == "thick":
        return ({k: thick(v, factor) for k, v in images.items()}, thick_label(label, factor),
                thick_geometry(geometry, factor))
    raise ValueError(f"unknown pipeline shift {kind!r}")

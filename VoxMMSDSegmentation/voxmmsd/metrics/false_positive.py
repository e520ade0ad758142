"""False-positive volume far from the reference: tumour called in brain that has none.

A Dice score mixes a boundary a few millimetres off with tumour called in the other hemisphere; a
clinician cares most about the second. :func:`fp_volume_outside` counts the predicted voxels farther
than ``margin_mm`` from every reference voxel of the region (the reference dilated by a ball of that
radius, in millimetres, so anisotropic grids are handled).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

#: the protocol's margin: predicted tumour more than this far from the reference is a false positive
FP_MARGIN_MM = 10.0


def near_reference(ref: np.ndarray, spacing_xyz: Sequence[float], margin_mm: float = FP_MARGIN_MM) -> np.ndarray:
    """Voxels within ``margin_mm`` (Euclidean, in mm) of a voxel of the boolean ``ref`` (z, y, x)."""
    from scipy import ndimage

    ref = np.asarray(ref, dtype=bool)
    if not ref.any():
        return np.zeros(ref.shape, dtype=bool)
    sampling = (float(spacing_xyz[2]), float(spacing_xyz[1]), float(spacing_xyz[0]))
    distance = ndimage.distance_transform_edt(~ref, sampling=sampling)
    return np.asarray(distance <= margin_mm)


def fp_volume_outside(pred: np.ndarray, ref: np.ndarray, spacing_xyz: Sequence[float],
                      margin_mm: float = FP_MARGIN_MM) -> float:
    """mL of the boolean ``pred`` farther than ``margin_mm`` from the boolean ``ref`` (all of it if ``ref``
    is empty)."""
    pred = np.asarray(pred, dtype=bool)
    far = pred & ~near_reference(ref, spacing_xyz, margin_mm)
    return float(far.sum()) * float(np.prod(spacing_xyz)) / 1000.0

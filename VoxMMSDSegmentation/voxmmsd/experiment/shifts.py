"""Pipeline shifts: the same exam as another preprocessing pipeline or scanner would hand it over.

Pure functions on one sequence's (z, y, x) array, used to build the pipeline-shift test set of the
model protocol (``scripts/make_variants.py``; docs/model-card.md). Each keeps the anatomy and the
reference label valid; only how the intensities (or the storage) look changes:

- ``thick5mm``: 5 mm axial slices resampled back to 1 mm (:func:`voxmmsd.finetune.data.thick_slices`);
- ``bias``: a smooth multiplicative bias field of its own per sequence (up to about +-35 %);
- ``zscore``: float intensities z-scored over the whole volume (the background becomes a negative
  constant, the brain's values negative and positive), as some pipelines store them;
- ``uint8``: rescaled to 0-255 and rounded to 8 bits;
- ``ras``: the same voxels stored in RAS order instead of LPS (done on the image, not here).
"""

from __future__ import annotations

import numpy as np

#: the shifts of the protocol, in table order
SHIFTS = ("thick5mm", "bias", "zscore", "uint8", "ras")


def bias_shift(array: np.ndarray, rng: np.random.Generator, strength: float = 0.3) -> np.ndarray:
    """``array`` times a smooth field exp(linear + quadratic form) with coefficients ~ N(0, strength/2)."""
    grids = np.meshgrid(*[np.linspace(-1.0, 1.0, s, dtype=np.float32) for s in array.shape], indexing="ij")
    field = np.zeros(array.shape, np.float32)
    for g in grids:
        field += float(rng.normal(0, strength / 2)) * g + float(rng.normal(0, strength / 2)) * (g * g - 0.33)
    return (array.astype(np.float32) * np.exp(field)).astype(np.float32)


def zscore_whole(array: np.ndarray) -> np.ndarray:
    """Float32 z-score over every voxel of ``array`` (background included)."""
    a = array.astype(np.float64)
    std = float(a.std())
    return ((a - float(a.mean())) / (std if std > 0 else 1.0)).astype(np.float32)


def to_uint8(array: np.ndarray) -> np.ndarray:
    """``array`` rescaled from [min, max] onto 0-255 and rounded."""
    a = array.astype(np.float64)
    lo, hi = float(a.min()), float(a.max())
    if hi <= lo:
        return np.zeros(array.shape, np.uint8)
    return np.round((a - lo) / (hi - lo) * 255.0).astype(np.uint8)

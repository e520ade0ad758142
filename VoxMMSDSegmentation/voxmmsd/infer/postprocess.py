"""From class logits to a label map: argmax, tiny-component removal, label convention."""

from __future__ import annotations

from typing import Tuple

import numpy as np

from voxmmsd.io.labels import BRATS2023, from_internal


def argmax_labels(logits: np.ndarray) -> np.ndarray:
    """Label map (z, y, x) uint8 = class index of the largest logit of ``logits`` (K, z, y, x)."""
    return np.argmax(logits, axis=0).astype(np.uint8)


def remove_small_components(label: np.ndarray, min_voxels: int) -> Tuple[np.ndarray, int]:
    """Set to 0 every 26-connected tumour component (any label > 0) smaller than ``min_voxels``.

    Returns the cleaned label map and the number of components removed.
    """
    if min_voxels <= 1 or not label.any():
        return label, 0
    from scipy import ndimage

    comps, n = ndimage.label(label > 0, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(comps.ravel(), minlength=n + 1)
    small = np.flatnonzero(sizes < min_voxels)
    small = small[small > 0]
    if small.size == 0:
        return label, 0
    out = label.copy()
    out[np.isin(comps, small)] = 0
    return out, int(small.size)


def min_component_voxels(min_ml: float, voxel_volume_ml: float) -> int:
    """The voxel count of ``min_ml`` millilitres (0 disables the removal)."""
    if min_ml <= 0:
        return 0
    return int(np.ceil(min_ml / voxel_volume_ml))


def to_convention(label: np.ndarray, convention: str = BRATS2023) -> np.ndarray:
    """The internal label map in ``convention`` (``brats2023`` keeps it, ``legacy`` maps ET 3 -> 4)."""
    return label if convention == BRATS2023 else from_internal(label, convention)

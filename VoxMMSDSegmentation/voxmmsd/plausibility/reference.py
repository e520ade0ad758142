"""What every check compares against: the case on a coarse grid and its normal-appearing brain.

The checks judge intensities *relative to the same patient's normal-appearing brain*, so they
work for any scanner, any intensity scale and any preprocessing (raw int16, percentile-scaled,
z-scored): each sequence is turned into a robust z-score, ``(x - median) / IQR`` of the
normal-appearing brain (an affine change of intensities leaves it unchanged).

* **brain**: voxels that are non-zero in most of the given sequences (a label map or a
  foreign image given as one sequence does not redefine the brain);
* **inner brain**: the brain at least :data:`INNER_MM` from its edge (no partial volume with
  the background, no skull-stripping rim);
* **normal-appearing brain**: the inner brain at least :data:`NORMAL_MM` from the segmented tumour.

Everything runs on a grid of about :data:`TARGET_MM` (every n-th voxel): medians and
fractions barely change, and a whole case takes well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from voxmmsd.sequences import SEQUENCES

#: the checks run on every n-th voxel, n chosen per axis so the step is about this many mm
TARGET_MM = 2.0
#: the inner brain is at least this far (mm) from the brain's edge
INNER_MM = 4.0
#: normal-appearing brain is at least this far (mm) from the segmented tumour
NORMAL_MM = 6.0
#: fewest coarse voxels of normal-appearing brain for its statistics (else the whole inner brain is used)
MIN_NORMAL_VOXELS = 500
#: a sequence whose voxels are non-zero in less than this share of the normal brain has no usable statistics
MIN_NONZERO_SHARE = 0.5

SEQUENCE_ORDER = SEQUENCES


def strides(spacing_zyx: Sequence[float], target_mm: float = TARGET_MM) -> Tuple[int, int, int]:
    """Step per axis so that ``spacing * step`` is about ``target_mm`` (at least 1)."""
    return tuple(max(1, int(round(target_mm / float(s)))) for s in spacing_zyx)  # type: ignore[return-value]


def bounding_box(mask: np.ndarray, margin: int = 1) -> Tuple[slice, ...]:
    """Slices of the bounding box of ``mask`` plus ``margin`` voxels (the whole array if empty)."""
    idx = np.argwhere(mask)
    if idx.size == 0:
        return tuple(slice(0, n) for n in mask.shape)
    lo = np.maximum(idx.min(axis=0) - margin, 0)
    hi = np.minimum(idx.max(axis=0) + margin + 1, mask.shape)
    return tuple(slice(int(a), int(b)) for a, b in zip(lo, hi))


def distance_mm(mask: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Distance (mm) of every voxel from ``mask`` (0 inside; inf everywhere when ``mask`` is empty)."""
    from scipy import ndimage

    if not mask.any():
        return np.full(mask.shape, np.inf, np.float32)
    return ndimage.distance_transform_edt(~mask, sampling=tuple(float(s) for s in spacing_zyx)).astype(np.float32)


def depth_mm(mask: np.ndarray, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Distance (mm) of every voxel of ``mask`` from its outside (0 outside)."""
    from scipy import ndimage

    padded = np.pad(mask, 1)  # the array's border counts as outside
    d = ndimage.distance_transform_edt(padded, sampling=tuple(float(s) for s in spacing_zyx))
    return d[1:-1, 1:-1, 1:-1].astype(np.float32)


def majority_mask(images: Mapping[str, np.ndarray]) -> np.ndarray:
    """Voxels non-zero in more than half of ``images`` (in the only one, when there is one; in both of two)."""
    count = sum((a != 0).astype(np.uint8) for a in images.values())
    need = len(images) // 2 + 1
    return np.asarray(count >= need)


def robust_stats(values: np.ndarray) -> Optional[Tuple[float, float]]:
    """(median, interquartile range) of ``values``; None when there are too few or the range is 0."""
    if values.size < 20:
        return None
    q25, q50, q75 = np.percentile(values.astype(np.float64), (25, 50, 75))
    if not q75 > q25:
        return None
    return float(q50), float(q75 - q25)


@dataclass
class Reference:
    """A case on the coarse grid, ready for the checks (see the module's description)."""

    images: Dict[str, np.ndarray]  # float32 per present sequence
    label: np.ndarray  # uint8, internal labels
    spacing: Tuple[float, float, float]  # (z, y, x) mm of the coarse grid
    brain: np.ndarray  # bool
    inner: np.ndarray  # bool
    normal: np.ndarray  # bool
    tumour_distance: np.ndarray  # mm from the whole tumour (0 inside)
    stats: Dict[str, Optional[Tuple[float, float]]]  # sequence -> (median, IQR) of the normal brain, or None
    #: array axis (0, 1, 2) running left-right, or None when unknown
    lr_axis: Optional[int] = None
    _z: Dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def voxel_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def has(self, sequence: str) -> bool:
        return sequence in self.images

    def usable(self, sequence: str) -> bool:
        """The sequence is present and its normal brain has a spread (it is not a mask or a constant)."""
        return self.stats.get(sequence) is not None

    def z(self, sequence: str) -> np.ndarray:
        """Robust z-score of ``sequence`` against the normal-appearing brain (raises KeyError if not usable)."""
        if sequence not in self._z:
            st = self.stats.get(sequence)
            if st is None:
                raise KeyError(sequence)
            self._z[sequence] = ((self.images[sequence] - st[0]) / st[1]).astype(np.float32)
        return self._z[sequence]

    def region(self, values: Sequence[int]) -> np.ndarray:
        return np.isin(self.label, list(values))


def prepare(images: Mapping[str, np.ndarray], label: np.ndarray, spacing_zyx: Sequence[float],
            brain_mask: Optional[np.ndarray] = None, lr_axis: Optional[int] = None) -> Reference:
    """The :class:`Reference` of a case: ``images`` (sequence -> (z, y, x) array) and ``label``
    (internal labels, same shape) on one grid of ``spacing_zyx`` mm; ``brain_mask`` (from brain
    extraction) replaces the brain found from the non-zero voxels when given."""
    if not images:
        raise ValueError("no images to check")
    shape = label.shape
    for key, arr in images.items():
        if arr.shape != shape:
            raise ValueError(f"{key} has shape {arr.shape}, the label map {shape}")
    step = strides(spacing_zyx)
    sl = tuple(slice(None, None, s) for s in step)
    coarse = {k: np.asarray(images[k][sl], np.float32) for k in SEQUENCE_ORDER if k in images}
    lab = np.asarray(label[sl], np.uint8)
    spacing = tuple(float(s) * n for s, n in zip(spacing_zyx, step))
    brain = majority_mask(coarse) if brain_mask is None else np.asarray(brain_mask[sl] != 0)
    box = bounding_box(brain | (lab > 0), margin=2)
    coarse = {k: v[box] for k, v in coarse.items()}
    lab, brain = lab[box], brain[box]
    inner = brain & (depth_mm(brain, spacing) > INNER_MM)
    if not inner.any():
        inner = brain
    tumour = lab > 0
    dist = distance_mm(tumour, spacing)
    normal = inner & (dist > NORMAL_MM)
    if np.count_nonzero(normal) < MIN_NORMAL_VOXELS:
        normal = inner & ~tumour
    if np.count_nonzero(normal) < MIN_NORMAL_VOXELS:
        normal = inner
    stats: Dict[str, Optional[Tuple[float, float]]] = {}
    n_normal = max(1, int(np.count_nonzero(normal)))
    for key, arr in coarse.items():
        nonzero = normal & (arr != 0)
        share = np.count_nonzero(nonzero) / n_normal
        stats[key] = robust_stats(arr[nonzero]) if share >= MIN_NONZERO_SHARE else None
    return Reference(coarse, lab, spacing, brain, inner, normal, dist, stats, lr_axis)  # type: ignore[arg-type]


def lr_axis_of(direction: Sequence[float]) -> int:
    """The array axis (of a (z, y, x) array) that runs left-right, from a 3x3 row-major LPS direction."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    column = int(np.argmax(np.abs(d[0])))  # the i, j or k axis with the largest L (x) component
    return 2 - column

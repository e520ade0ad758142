"""One canonical orientation for the network: axes permuted and flipped (no resampling) so that array axes
``(z, y, x)`` run along (S, P, L) in LPS terms, i.e. the voxel axes i, j, k point to L, P, S (the direction of
the BraTS training images: identity in SimpleITK's LPS space).

The same physical image stored RAS, LPS, or with its axes in another order gives the same array here, so the
segmentation does not depend on how a file was stored. An oblique grid is brought to the nearest canonical
axes (each voxel axis goes to the physical axis it is closest to); its voxels are not resampled.

:func:`to_canonical` returns the reoriented array and a :class:`Reorientation`, whose :meth:`~Reorientation.undo`
brings an array on the canonical grid (e.g. a label map) back onto the stored grid, voxel for voxel.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np

from voxmmsd.io.geometry import Geometry


@dataclass(frozen=True)
class Reorientation:
    """How a grid maps onto the canonical axes.

    ``axes[c]`` is the stored voxel axis (0 = i, 1 = j, 2 = k) that becomes canonical voxel axis ``c``;
    ``flips[c]`` says whether it runs backwards.
    """

    axes: Tuple[int, int, int]
    flips: Tuple[bool, bool, bool]
    stored: Geometry
    canonical: Geometry

    @property
    def is_identity(self) -> bool:
        return self.axes == (0, 1, 2) and not any(self.flips)

    def apply(self, array: np.ndarray) -> np.ndarray:
        """``array`` (..., z, y, x) on the stored grid -> the canonical grid (a view where possible)."""
        if self.is_identity:
            return array
        lead = array.ndim - 3
        # array axis of voxel axis v is lead + (2 - v); canonical array axis lead + (2 - c) takes stored axes[c]
        order = list(range(lead)) + [lead + 2 - self.axes[2 - a] for a in range(3)]
        out = np.transpose(array, order)
        for c in range(3):
            if self.flips[c]:
                out = np.flip(out, axis=lead + 2 - c)
        return np.ascontiguousarray(out)

    def undo(self, array: np.ndarray) -> np.ndarray:
        """``array`` (..., z, y, x) on the canonical grid -> the stored grid (the inverse of :meth:`apply`)."""
        if self.is_identity:
            return array
        lead = array.ndim - 3
        out = array
        for c in range(3):
            if self.flips[c]:
                out = np.flip(out, axis=lead + 2 - c)
        # canonical axis c holds stored axis axes[c]: put it back at stored position axes[c]
        inverse = [0, 0, 0]
        for c, v in enumerate(self.axes):
            inverse[v] = c
        order = list(range(lead)) + [lead + 2 - inverse[2 - a] for a in range(3)]
        return np.ascontiguousarray(np.transpose(out, order))

    def describe(self) -> str:
        from voxmmsd.io.geometry import orientation_code

        return f"{orientation_code(self.stored.direction)} -> {orientation_code(self.canonical.direction)}"


def canonical_axes(direction: Tuple[float, ...]) -> Tuple[Tuple[int, int, int], Tuple[bool, bool, bool]]:
    """(axes, flips) taking the voxel axes of ``direction`` (9 values, columns = i, j, k) onto L, P, S.

    Each physical axis gets the voxel axis most parallel to it (largest cosines first, so an oblique grid
    is assigned unambiguously)."""
    d = np.abs(np.asarray(direction, dtype=float).reshape(3, 3))  # d[physical, voxel]
    axes = [-1, -1, -1]
    used: set = set()
    for flat in np.argsort(-d, axis=None):
        phys, vox = divmod(int(flat), 3)
        if axes[phys] == -1 and vox not in used:
            axes[phys] = vox
            used.add(vox)
    m = np.asarray(direction, dtype=float).reshape(3, 3)
    flips = tuple(bool(m[p, axes[p]] < 0) for p in range(3))
    return (axes[0], axes[1], axes[2]), flips  # type: ignore[return-value]


def reorientation(geometry: Geometry) -> Reorientation:
    """The :class:`Reorientation` of ``geometry`` (its canonical grid covers the same voxels)."""
    axes, flips = canonical_axes(geometry.direction)
    m = geometry.ijk_to_lps()
    size = tuple(geometry.size[v] for v in axes)
    spacing = tuple(geometry.spacing[v] for v in axes)
    # canonical index 0 along axis c is stored index 0, or size-1 where flipped
    start = np.zeros(4)
    start[3] = 1.0
    cols = []
    d = np.asarray(geometry.direction, dtype=float).reshape(3, 3)
    for c, v in enumerate(axes):
        if flips[c]:
            start[v] = geometry.size[v] - 1
        cols.append(-d[:, v] if flips[c] else d[:, v])
    origin = (m @ start)[:3]
    direction = np.stack(cols, axis=1)
    canonical = Geometry(size, spacing, tuple(float(o) for o in origin),  # type: ignore[arg-type]
                         tuple(float(v) for v in direction.ravel()))
    return Reorientation((axes[0], axes[1], axes[2]), flips, geometry, canonical)


def to_canonical(array: np.ndarray, geometry: Geometry) -> Tuple[np.ndarray, Reorientation]:
    """``array`` (..., z, y, x) on ``geometry`` reoriented onto the canonical axes, and how to undo it."""
    r = reorientation(geometry)
    return r.apply(array), r


def same_voxels(a: Geometry, b: Geometry, tol: float = 1e-4) -> bool:
    """Whether grids ``a`` and ``b`` hold the same voxels at the same places, stored in any axis order or
    direction (e.g. one image written RAS, the other LPS): then one array is the other's axes turned."""
    return reorientation(a).canonical.same_as(reorientation(b).canonical, tol)


def turn_onto(array: np.ndarray, stored: Geometry, target: Geometry) -> np.ndarray:
    """``array`` on ``stored`` put onto ``target`` by turning its axes (no resampling): ``same_voxels`` must hold."""
    return reorientation(target).undo(reorientation(stored).apply(array))

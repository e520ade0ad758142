"""Image grids (size, spacing, origin, direction) and resampling onto a reference grid.

SimpleITK works in LPS physical coordinates; so does everything here. The single
place that converts to RAS (for Slicer) is :func:`lps_to_ras_matrix`.

Arrays follow SimpleITK's ``GetArrayFromImage`` order: ``(z, y, x)`` = ``(k, j, i)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from voxmmsd.errors import InputError


@dataclass(frozen=True)
class Geometry:
    """A 3-D voxel grid in LPS physical space. ``size`` and ``spacing`` are in (i, j, k) order."""

    size: Tuple[int, int, int]
    spacing: Tuple[float, float, float]
    origin: Tuple[float, float, float]
    direction: Tuple[float, ...]  # 9 values, row-major, columns are the i, j, k axes

    @classmethod
    def of(cls, image: sitk.Image) -> "Geometry":
        return cls(
            tuple(int(v) for v in image.GetSize()),  # type: ignore[arg-type]
            tuple(float(v) for v in image.GetSpacing()),  # type: ignore[arg-type]
            tuple(float(v) for v in image.GetOrigin()),  # type: ignore[arg-type]
            tuple(float(v) for v in image.GetDirection()),
        )

    @property
    def shape(self) -> Tuple[int, int, int]:
        """Array shape ``(z, y, x)`` of an image on this grid."""
        return (self.size[2], self.size[1], self.size[0])

    @property
    def voxel_volume_ml(self) -> float:
        return float(np.prod(self.spacing)) / 1000.0

    def ijk_to_lps(self) -> np.ndarray:
        """4x4 matrix from voxel index (i, j, k) to LPS millimetres."""
        m = np.eye(4)
        m[:3, :3] = np.asarray(self.direction).reshape(3, 3) @ np.diag(self.spacing)
        m[:3, 3] = self.origin
        return m

    def apply(self, image: sitk.Image) -> sitk.Image:
        """Stamp this grid onto ``image`` (whose size must match)."""
        if tuple(image.GetSize()) != self.size:
            raise ValueError(f"image size {image.GetSize()} does not match grid size {self.size}")
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def blank(self, pixel_type: int = sitk.sitkFloat32) -> sitk.Image:
        return self.apply(sitk.Image(list(self.size), pixel_type))

    def same_as(self, other: "Geometry", tol: float = 1e-4) -> bool:
        return (
            self.size == other.size
            and np.allclose(self.spacing, other.spacing, atol=tol)
            and np.allclose(self.origin, other.origin, atol=tol)
            and np.allclose(self.direction, other.direction, atol=tol)
        )

    def to_dict(self) -> Dict[str, Any]:
        return {"size": list(self.size), "spacing": list(self.spacing), "origin": list(self.origin),
                "direction": list(self.direction)}

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "Geometry":
        return cls(tuple(int(v) for v in d["size"]), tuple(float(v) for v in d["spacing"]),  # type: ignore[arg-type]
                   tuple(float(v) for v in d["origin"]), tuple(float(v) for v in d["direction"]))  # type: ignore[arg-type]

    def describe(self) -> str:
        axes = orientation_code(self.direction)
        return (f"{self.size[0]}x{self.size[1]}x{self.size[2]} voxels, spacing "
                f"{'x'.join('%.3g' % s for s in self.spacing)} mm, {axes}, origin "
                f"({', '.join('%.1f' % o for o in self.origin)})")


def lps_to_ras_matrix(ijk_to_lps: np.ndarray) -> np.ndarray:
    """The one LPS -> RAS conversion of the engine (negate the first two physical axes)."""
    flip = np.diag([-1.0, -1.0, 1.0, 1.0])
    return flip @ np.asarray(ijk_to_lps, dtype=float)


def orientation_code(direction: Sequence[float]) -> str:
    """Three letters: where each voxel axis points, in LPS terms (e.g. ``LPS``, ``RAS``)."""
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    letters = (("L", "R"), ("P", "A"), ("S", "I"))
    code = ""
    for col in range(3):
        axis = int(np.argmax(np.abs(d[:, col])))
        code += letters[axis][0] if d[axis, col] > 0 else letters[axis][1]
    return code


def physical_bounds(geometry: Geometry) -> Tuple[np.ndarray, np.ndarray]:
    """Axis-aligned physical bounding box (min, max) of the grid's voxel-edge corners."""
    m = geometry.ijk_to_lps()
    corners = []
    for i in (-0.5, geometry.size[0] - 0.5):
        for j in (-0.5, geometry.size[1] - 0.5):
            for k in (-0.5, geometry.size[2] - 0.5):
                corners.append((m @ np.array([i, j, k, 1.0]))[:3])
    c = np.asarray(corners)
    return c.min(axis=0), c.max(axis=0)


def overlap_fraction(a: Geometry, b: Geometry) -> float:
    """Fraction of ``a``'s physical bounding box that ``b``'s bounding box covers."""
    amin, amax = physical_bounds(a)
    bmin, bmax = physical_bounds(b)
    inter = np.clip(np.minimum(amax, bmax) - np.maximum(amin, bmin), 0, None)
    vol_a = float(np.prod(amax - amin))
    return float(np.prod(inter)) / vol_a if vol_a > 0 else 0.0


def resample_to(image: sitk.Image, reference: Geometry, label: bool = False,
                transform: Optional[sitk.Transform] = None) -> sitk.Image:
    """The one resampler: ``image`` onto the ``reference`` grid in physical space, through ``transform`` (reference
    point -> point in ``image``, e.g. a rigid registration's result; default the identity).

    Linear interpolation for intensities (float32 out), nearest neighbour for labels
    (pixel type kept). Voxels outside ``image`` become 0.
    """
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    pixel = image.GetPixelID() if label else sitk.sitkFloat32
    if not label and image.GetPixelID() != sitk.sitkFloat32:
        image = sitk.Cast(image, sitk.sitkFloat32)
    return sitk.Resample(image, list(reference.size), transform if transform is not None else sitk.Transform(),
                         interp, reference.origin, reference.spacing, reference.direction, 0, pixel)


def check_overlap(name: str, geometry: Geometry, reference: Geometry, ref_name: str,
                  minimum: float = 0.5) -> None:
    """Raise :class:`InputError` if ``geometry`` covers less than ``minimum`` of the reference."""
    frac = overlap_fraction(reference, geometry)
    if frac < minimum:
        raise InputError(
            f"{name} covers only {frac:.0%} of the reference {ref_name} in physical space "
            f"({geometry.describe()} vs {reference.describe()}). The images are not in the same "
            f"space: check that they belong to the same study, or co-register them (--register)."
        )

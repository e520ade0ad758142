"""Synthetic raw clinical exams (for tests and demos): a head around a skull-stripped brain, thick slices,
one grid per sequence, oblique slices, small head motion between series, clinical file names.

:func:`add_head` puts layers around the brain mask, by physical distance from the brain (mm):
CSF, the skull's inner table, marrow, outer table, scalp fat and skin, each thickness varied
smoothly around the head, with each sequence's usual contrast (fat bright on T1, CSF bright on
T2 and dark on FLAIR, cortical bone dark everywhere), and Rician-like noise in the air, so that
the result does not look skull-stripped. :func:`acquire` then samples it as a scanner would:
partial-volume smoothing over each slice's thickness, the series' own (oblique) grid and a
rigid head motion. :func:`write_raw_exam` writes a whole exam, with the true label map and the
brain mask on the T1c grid.

Works on any case already on one grid: a :mod:`voxmmsd.synthetic` phantom, or a real
skull-stripped BraTS case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from voxmmsd.io.geometry import Geometry
from voxmmsd.synthetic import rotation

Vec3 = Tuple[float, float, float]

#: (outer distance from the brain in mm, intensity per sequence relative to the brain's 99th percentile)
HEAD_LAYERS: Tuple[Tuple[float, Dict[str, float]], ...] = (
    (2.0, {"t1n": 0.12, "t1c": 0.14, "t2w": 1.00, "t2f": 0.08}),  # CSF in the subarachnoid space
    (3.5, {"t1n": 0.03, "t1c": 0.03, "t2w": 0.03, "t2f": 0.03}),  # inner table
    (5.5, {"t1n": 0.85, "t1c": 0.88, "t2w": 0.55, "t2f": 0.60}),  # marrow (diploe, fatty)
    (7.0, {"t1n": 0.03, "t1c": 0.03, "t2w": 0.03, "t2f": 0.03}),  # outer table
    (11.0, {"t1n": 0.95, "t1c": 0.95, "t2w": 0.70, "t2f": 0.75}),  # scalp fat
    (13.0, {"t1n": 0.45, "t1c": 0.55, "t2w": 0.40, "t2f": 0.45}),  # skin and muscle
)


@dataclass(frozen=True)
class Acquisition:
    """How one series is acquired: file name, voxel spacing (x, y, z), slice tilt and head motion."""

    name: str
    spacing: Vec3 = (1.0, 1.0, 1.0)
    tilt_deg: Vec3 = (0.0, 0.0, 0.0)  # rotation of the slice grid about the L, P, S axes
    motion_deg: Vec3 = (0.0, 0.0, 0.0)  # head rotation relative to the T1c series
    motion_mm: Vec3 = (0.0, 0.0, 0.0)  # head translation relative to the T1c series


#: A typical clinical glioma protocol: 3-D MPRAGE, thick-slice post-contrast T1, T2 TSE and FLAIR.
CLINICAL_PROTOCOL: Dict[str, Acquisition] = {
    "t1n": Acquisition("MPRAGE", (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (2.0, 0.0, -1.5), (1.5, -2.0, 1.0)),
    "t1c": Acquisition("T1+C", (0.9, 0.9, 5.5), (12.0, 0.0, 0.0)),
    "t2w": Acquisition("T2 TSE", (0.8, 0.8, 5.0), (8.0, 4.0, 0.0), (-1.5, 1.0, 0.0), (-1.0, 1.5, 2.0)),
    "t2f": Acquisition("fla", (0.9, 0.9, 5.5), (10.0, 0.0, 3.0), (0.0, -2.0, 1.0), (2.0, 1.0, -1.5)),
}


def brain_mask(arrays: Mapping[str, np.ndarray]) -> np.ndarray:
    """The brain of a skull-stripped case: voxels non-zero in any sequence, holes filled, largest part."""
    mask = np.zeros(next(iter(arrays.values())).shape, bool)
    for a in arrays.values():
        mask |= a != 0
    labels, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, labels, range(1, n + 1))
        mask = labels == (int(np.argmax(sizes)) + 1)
    return ndimage.binary_fill_holes(mask)


def _padded(geometry: Geometry, margin_mm: float) -> Geometry:
    pad = [int(np.ceil(margin_mm / s)) for s in geometry.spacing]
    d = np.asarray(geometry.direction).reshape(3, 3)
    origin = np.asarray(geometry.origin) - d @ (np.asarray(pad) * np.asarray(geometry.spacing))
    size = tuple(int(n + 2 * p) for n, p in zip(geometry.size, pad))
    return Geometry(size, geometry.spacing, tuple(float(v) for v in origin), geometry.direction)  # type: ignore[arg-type]


def add_head(images: Mapping[str, sitk.Image], margin_mm: float = 18.0, seed: int = 0,
             noise: float = 0.012) -> Tuple[Dict[str, sitk.Image], sitk.Image]:
    """Skull, scalp and noisy air around the skull-stripped brain of ``images`` (all on one grid).

    Returns the head images (float32, on the grid grown by ``margin_mm``) and the brain mask (uint8).
    """
    first = next(iter(images.values()))
    grid = _padded(Geometry.of(first), margin_mm)
    arrays = {}
    for seq, img in images.items():
        big = sitk.Resample(sitk.Cast(img, sitk.sitkFloat32), list(grid.size), sitk.Transform(), sitk.sitkLinear,
                            grid.origin, grid.spacing, grid.direction, 0.0, sitk.sitkFloat32)
        arrays[seq] = sitk.GetArrayFromImage(big)
    mask = brain_mask(arrays)
    sampling = tuple(reversed(grid.spacing))
    dist = ndimage.distance_transform_edt(~mask, sampling=sampling)
    rng = np.random.default_rng(seed)
    field = ndimage.gaussian_filter(rng.normal(0, 1, mask.shape), sigma=[12.0 / s for s in sampling])
    field /= max(float(np.abs(field).max()), 1e-6)
    dist = dist / (1.0 + 0.25 * field)  # layers 25 % thicker or thinner around the head
    out: Dict[str, sitk.Image] = {}
    for seq, arr in arrays.items():
        inside = arr[mask]
        top = float(np.percentile(inside[inside > 0], 99)) if np.any(inside > 0) else 1.0
        head = np.zeros_like(arr)
        inner = 0.0
        for outer, contrast in HEAD_LAYERS:
            head[(~mask) & (dist > inner) & (dist <= outer)] = contrast.get(seq, 0.5) * top
            inner = outer
        head = ndimage.gaussian_filter(head, sigma=[0.6 / s for s in sampling])
        values = np.where(mask, arr, head)
        values = values * (1.0 + 0.03 * field)  # a little bias field
        sig = noise * top
        values = np.hypot(values + rng.normal(0, sig, arr.shape), rng.normal(0, sig, arr.shape))
        out[seq] = grid.apply(sitk.GetImageFromArray(values.astype(np.float32)))
    return out, grid.apply(sitk.GetImageFromArray(mask.astype(np.uint8)))


def acquisition_grid(bounds: Tuple[np.ndarray, np.ndarray], spacing: Vec3, tilt_deg: Vec3) -> Geometry:
    """A grid of ``spacing`` tilted by ``tilt_deg`` covering the physical box ``bounds`` (min, max)."""
    lo, hi = bounds
    rot = rotation(0, tilt_deg[0]) @ rotation(1, tilt_deg[1]) @ rotation(2, tilt_deg[2])
    centre = (lo + hi) / 2
    corners = np.array([[x, y, z] for x in (lo[0], hi[0]) for y in (lo[1], hi[1]) for z in (lo[2], hi[2])])
    local = (corners - centre) @ rot  # coordinates along the grid's axes
    extent = local.max(axis=0) - local.min(axis=0)
    size = np.maximum(np.ceil(extent / np.asarray(spacing)).astype(int), 2)
    half = (size - 1) / 2 * np.asarray(spacing)
    origin = centre - rot @ half
    return Geometry((int(size[0]), int(size[1]), int(size[2])),
                    (float(spacing[0]), float(spacing[1]), float(spacing[2])),
                    (float(origin[0]), float(origin[1]), float(origin[2])), tuple(float(v) for v in rot.ravel()))


def _motion(acq: Acquisition, centre: np.ndarray) -> sitk.Euler3DTransform:
    tx = sitk.Euler3DTransform()
    tx.SetCenter([float(c) for c in centre])
    tx.SetRotation(*[float(np.deg2rad(a)) for a in acq.motion_deg])
    tx.SetTranslation([float(t) for t in acq.motion_mm])
    return tx


def acquire(image: sitk.Image, acq: Acquisition, bounds: Tuple[np.ndarray, np.ndarray], centre: np.ndarray,
            label: bool = False, air_sigma: float = 0.0, seed: int = 0) -> sitk.Image:
    """``image`` as the series ``acq`` records it (thick slices average over their thickness); where the series
    reaches beyond ``image``, Rayleigh-distributed air noise of scale ``air_sigma``."""
    grid = acquisition_grid(bounds, acq.spacing, acq.tilt_deg)
    src = image
    if not label:
        src_sp = np.asarray(image.GetSpacing())
        # partial volume: a Gaussian of the target voxel's size (FWHM) along each axis, less what the source has
        sig = np.sqrt(np.clip((np.asarray(acq.spacing) / 2.355) ** 2 - (src_sp / 2.355) ** 2, 0, None))
        if np.any(sig > 0.05):
            sigmas = [float(max(s, 0.01)) for s in sig]
            src = sitk.SmoothingRecursiveGaussian(sitk.Cast(image, sitk.sitkFloat32), sigmas)
    interp = sitk.sitkNearestNeighbor if label else sitk.sitkLinear
    pixel = sitk.sitkUInt8 if label else sitk.sitkFloat32
    out = sitk.Resample(src, list(grid.size), _motion(acq, centre), interp, grid.origin, grid.spacing,
                        grid.direction, -1.0 if air_sigma > 0 else 0.0, pixel)
    if label or air_sigma <= 0:
        return out
    arr = sitk.GetArrayFromImage(out)
    outside = arr == -1.0
    rng = np.random.default_rng(seed)
    arr[outside] = np.hypot(rng.normal(0, air_sigma, int(outside.sum())), rng.normal(0, air_sigma, int(outside.sum())))
    filled = sitk.GetImageFromArray(arr)
    filled.CopyInformation(out)
    return filled


def physical_bounds_of(mask: sitk.Image, margin_mm: float = 0.0) -> Tuple[np.ndarray, np.ndarray]:
    """Physical axis-aligned box (min, max) of the non-zero voxels of ``mask``, grown by ``margin_mm``."""
    idx = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0)[:, ::-1]  # (i, j, k)
    pts = np.array([mask.TransformContinuousIndexToPhysicalPoint([float(v) for v in p])
                    for p in (idx.min(axis=0), idx.max(axis=0))])
    corners = np.array([[a, b, c] for a in pts[:, 0] for b in pts[:, 1] for c in pts[:, 2]])
    return corners.min(axis=0) - margin_mm, corners.max(axis=0) + margin_mm


def write_raw_exam(folder: Path, images: Mapping[str, sitk.Image], label: Optional[sitk.Image] = None,
                   protocol: Optional[Mapping[str, Acquisition]] = None, prefix: str = "exam",
                   seed: int = 0, extension: str = ".nii.gz", truth_dir: Optional[Path] = None) -> Dict[str, Path]:
    """Write a raw exam of the skull-stripped case ``images`` (sequence -> image, one grid) into ``folder``.

    Each series is named ``<prefix>_<acquisition name><extension>``; ``truth_brain`` and (with a label)
    ``truth_label``, on the T1c series' grid, go into ``truth_dir`` (default ``folder``). Returns the paths.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    protocol = dict(protocol or CLINICAL_PROTOCOL)
    heads, mask = add_head(images, seed=seed)
    bounds = physical_bounds_of(mask, margin_mm=22.0)  # the head and some air
    idx = np.argwhere(sitk.GetArrayViewFromImage(mask) > 0).mean(axis=0)[::-1]
    centre = np.asarray(mask.TransformContinuousIndexToPhysicalPoint([float(v) for v in idx]))
    out: Dict[str, Path] = {}
    for seq, img in heads.items():
        acq = protocol[seq]
        path = folder / f"{prefix}_{acq.name}{extension}"
        corner = sitk.GetArrayViewFromImage(img)[:3, :3, :3]  # always air
        series = acquire(img, acq, bounds, centre, air_sigma=float(corner.mean()) / np.sqrt(np.pi / 2), seed=seed)
        arr = sitk.GetArrayFromImage(series)
        top = float(np.percentile(arr, 99.5)) or 1.0
        scaled = sitk.GetImageFromArray(np.clip(arr / top * 1500.0, 0, 32767).astype(np.int16))
        scaled.CopyInformation(series)
        sitk.WriteImage(scaled, str(path), True)
        out[seq] = path
    ref = protocol["t1c"]
    truth = {"truth_brain": mask}
    if label is not None:
        truth["truth_label"] = sitk.Resample(label, mask, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                                             sitk.sitkUInt8)
    for name, img in truth.items():
        path = Path(truth_dir or folder) / f"{name}{extension}"
        path.parent.mkdir(parents=True, exist_ok=True)
        sitk.WriteImage(acquire(img, ref, bounds, centre, label=True), str(path), True)
        out[name] = path
    return out

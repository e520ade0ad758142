"""Deterministic synthetic brain-tumour cases for tests and demos (numpy + SimpleITK).

A phantom is defined analytically in physical (LPS, mm) space: an ellipsoidal brain
with ventricles, and a tumour made of a non-enhancing core (NETC), an enhancing rim
(ET) and surrounding oedema (SNFH). Each sequence samples the phantom at the voxel
centres of its own grid, so sequences can live on different grids (other spacing,
origin, orientation) and still describe the same anatomy: resampling one onto another
must reproduce the other's sampling.

Tissue contrasts follow the usual appearance: ET bright on T1c; oedema bright on
FLAIR and T2; CSF bright on T2 and dark on FLAIR; necrosis dark on T1.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from voxmmsd.io.discovery import SEQUENCES
from voxmmsd.io.geometry import Geometry
from voxmmsd.io.labels import LEGACY, from_internal

# tissue codes used by the phantom
BACKGROUND, BRAIN, CSF, SNFH, NETC, ET = 0, 1, 2, 3, 4, 5
# tissue -> internal label value
TISSUE_LABEL = np.array([0, 0, 0, 2, 1, 3], dtype=np.uint8)
# sequence -> intensity per tissue code
CONTRAST: Dict[str, Tuple[float, ...]] = {
    "t1n": (0.0, 0.62, 0.20, 0.48, 0.30, 0.55),
    "t1c": (0.0, 0.60, 0.18, 0.50, 0.28, 1.00),
    "t2w": (0.0, 0.48, 1.00, 0.82, 0.90, 0.66),
    "t2f": (0.0, 0.50, 0.10, 1.00, 0.55, 0.78),
}


@dataclass(frozen=True)
class Phantom:
    """Physical description of a synthetic case (millimetres, LPS)."""

    center: Tuple[float, float, float] = (0.0, 0.0, 0.0)
    brain_radii: Tuple[float, float, float] = (20.0, 24.0, 18.0)
    tumour_offset: Tuple[float, float, float] = (6.0, -5.0, 3.0)
    core_radius: float = 3.5
    rim_radius: float = 6.0
    edema_radius: float = 10.0
    ventricle_radii: Tuple[float, float, float] = (3.0, 6.0, 3.0)

    def tissue(self, points: np.ndarray) -> np.ndarray:
        """Tissue code at physical ``points`` (..., 3)."""
        p = points - np.asarray(self.center)
        out = np.zeros(points.shape[:-1], dtype=np.uint8)
        brain = ((p / np.asarray(self.brain_radii)) ** 2).sum(-1) <= 1.0
        out[brain] = BRAIN
        vent_c = np.array([-6.0, 2.0, 2.0])
        vent = (((p - vent_c) / np.asarray(self.ventricle_radii)) ** 2).sum(-1) <= 1.0
        out[brain & vent] = CSF
        t = p - np.asarray(self.tumour_offset)
        r = np.sqrt((t ** 2).sum(-1))
        # irregular oedema: radius modulated by direction
        theta = np.arctan2(t[..., 1], t[..., 0])
        phi = np.arctan2(t[..., 2], np.sqrt(t[..., 0] ** 2 + t[..., 1] ** 2) + 1e-9)
        edema_r = self.edema_radius * (1.0 + 0.18 * np.sin(3 * theta) * np.cos(2 * phi))
        out[brain & (r <= edema_r)] = SNFH
        out[brain & (r <= self.rim_radius)] = ET
        out[brain & (r <= self.core_radius)] = NETC
        return out


def default_geometry(shape_xyz: Tuple[int, int, int] = (48, 56, 40),
                     spacing: Tuple[float, float, float] = (1.0, 1.0, 1.0),
                     direction: Optional[Sequence[float]] = None) -> Geometry:
    """A grid of ``shape_xyz`` voxels centred on the physical origin."""
    d = np.asarray(direction if direction is not None else np.eye(3).ravel(), dtype=float).reshape(3, 3)
    half = (np.asarray(shape_xyz, dtype=float) - 1) / 2 * np.asarray(spacing)
    origin = -d @ half
    return Geometry(tuple(int(s) for s in shape_xyz), tuple(float(s) for s in spacing),  # type: ignore[arg-type]
                    tuple(float(o) for o in origin), tuple(float(v) for v in d.ravel()))  # type: ignore[arg-type]


def rotation(axis: int, degrees: float) -> np.ndarray:
    """3x3 rotation about LPS axis ``axis`` (0, 1, 2)."""
    a = np.deg2rad(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


def voxel_centres(geometry: Geometry) -> np.ndarray:
    """Physical coordinates (z, y, x, 3) of every voxel centre of ``geometry``."""
    nx, ny, nz = geometry.size
    k, j, i = np.meshgrid(np.arange(nz), np.arange(ny), np.arange(nx), indexing="ij")
    ijk = np.stack([i, j, k, np.ones_like(i)], axis=-1).astype(float)
    return (ijk @ geometry.ijk_to_lps().T)[..., :3]


def _bias(points: np.ndarray, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.normal(0, 1, 3) / 60.0
    return 1.0 + 0.08 * np.sin(points @ w * np.pi)


def sample_sequence(phantom: Phantom, geometry: Geometry, sequence: str, seed: int = 0,
                    noise: float = 0.02, scale: float = 1000.0) -> np.ndarray:
    """int16 intensities of ``sequence`` sampled on ``geometry`` (array order z, y, x)."""
    pts = voxel_centres(geometry)
    tissue = phantom.tissue(pts)
    values = np.asarray(CONTRAST[sequence])[tissue]
    values = values * _bias(pts, seed + SEQUENCES.index(sequence))
    if noise > 0:
        rng = np.random.default_rng(seed * 7 + SEQUENCES.index(sequence))
        values = values + rng.normal(0, noise, values.shape) * (tissue > 0)
    return np.clip(values * scale, 0, 32767).astype(np.int16)


def sample_label(phantom: Phantom, geometry: Geometry) -> np.ndarray:
    """Internal (BraTS 2023) label map of the phantom on ``geometry``."""
    return TISSUE_LABEL[phantom.tissue(voxel_centres(geometry))]


def random_phantom(seed: int) -> Phantom:
    """A phantom with seeded tumour position and sizes (deterministic for a seed)."""
    rng = np.random.default_rng(seed)
    ox, oy, oz = (float(v) for v in rng.uniform(-5, 5, 3))
    off = (ox, oy, oz)
    core = float(rng.uniform(2.5, 4.0))
    return replace(Phantom(), tumour_offset=off, core_radius=core, rim_radius=core + float(rng.uniform(2, 3.5)),
                   edema_radius=core + float(rng.uniform(6, 9)))


NAMINGS = {
    "brats2023": {"t1n": "{id}-t1n", "t1c": "{id}-t1c", "t2w": "{id}-t2w", "t2f": "{id}-t2f", "label": "{id}-seg"},
    "legacy": {"t1n": "{id}_t1", "t1c": "{id}_t1ce", "t2w": "{id}_t2", "t2f": "{id}_flair", "label": "{id}_seg"},
    "short": {"t1n": "t1", "t1c": "t1c", "t2w": "t2", "t2f": "flair", "label": "seg"},
    "nnunet": {"t1n": "{id}_0000", "t1c": "{id}_0001", "t2w": "{id}_0002", "t2f": "{id}_0003", "label": "{id}"},
}


def write_case(folder: Path, case_id: str = "case000", seed: int = 0, naming: str = "brats2023",
               geometry: Optional[Geometry] = None, grids: Optional[Dict[str, Geometry]] = None,
               with_label: bool = True, label_convention: str = "brats2023", noise: float = 0.02,
               phantom: Optional[Phantom] = None, extension: str = ".nii.gz") -> Dict[str, Path]:
    """Write a synthetic case into ``folder``; return the paths written (by sequence, and ``label``).

    ``grids`` gives some sequences their own grid; others use ``geometry`` (default
    :func:`default_geometry`). The label is written on the T1c grid. For the nnU-Net
    naming, images go to ``folder/imagesTr`` and the label to ``folder/labelsTr``.
    """
    folder = Path(folder)
    phantom = phantom or random_phantom(seed)
    geometry = geometry or default_geometry()
    grids = grids or {}
    names = NAMINGS[naming]
    img_dir = folder / "imagesTr" if naming == "nnunet" else folder
    lab_dir = folder / "labelsTr" if naming == "nnunet" else folder
    img_dir.mkdir(parents=True, exist_ok=True)
    out: Dict[str, Path] = {}
    for seq in SEQUENCES:
        g = grids.get(seq, geometry)
        arr = sample_sequence(phantom, g, seq, seed=seed, noise=noise)
        path = img_dir / (names[seq].format(id=case_id) + extension)
        sitk.WriteImage(g.apply(sitk.GetImageFromArray(arr)), str(path), True)
        out[seq] = path
    if with_label:
        g = grids.get("t1c", geometry)
        lab = sample_label(phantom, g)
        if label_convention == LEGACY:
            lab = from_internal(lab, LEGACY)
        lab_dir.mkdir(parents=True, exist_ok=True)
        path = lab_dir / (names["label"].format(id=case_id) + extension)
        sitk.WriteImage(g.apply(sitk.GetImageFromArray(lab)), str(path), True)
        out["label"] = path
    return out


def write_dataset(root: Path, n: int = 4, naming: str = "brats2023", seed: int = 0, **kwargs) -> Path:
    """Write ``n`` synthetic cases, one sub-folder each (or one nnU-Net folder)."""
    root = Path(root)
    for k in range(n):
        cid = f"case{k:03d}"
        folder = root if naming == "nnunet" else root / cid
        write_case(folder, cid, seed=seed + k, naming=naming, **kwargs)
    return root

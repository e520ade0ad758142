"""Preprocessing shared by pre-training, fine-tuning and inference (numpy + SciPy only).

1. Crop to the brain's bounding box (voxels non-zero in any sequence), plus a margin.
2. Optionally resample the crop to a target spacing (e.g. 2 mm for small CPU models).
3. Scale each sequence by its 99.9th percentile inside the brain and clip to [0, 1].

:func:`restore` maps a label map or class scores back onto the full reference grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from voxmmsd.errors import InputError

Box = Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]  # (start, stop) per array axis z, y, x


@dataclass(frozen=True)
class PreprocessConfig:
    """How images are prepared for the network (saved in model packages and runs)."""

    percentile: float = 99.9
    crop_margin: int = 2
    #: target voxel spacing in mm (x, y, z), or None to keep the reference grid's
    spacing: Optional[Tuple[float, float, float]] = None

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["spacing"] = list(self.spacing) if self.spacing else None
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PreprocessConfig":
        sp = d.get("spacing")
        return cls(float(d.get("percentile", 99.9)), int(d.get("crop_margin", 2)),
                   tuple(float(v) for v in sp) if sp else None)  # type: ignore[arg-type]


@dataclass
class Prepared:
    """A preprocessed case: ``image`` (C, z, y, x) float32 in [0, 1] and how to undo the crop/resampling."""

    image: np.ndarray
    box: Box
    full_shape: Tuple[int, int, int]
    crop_shape: Tuple[int, int, int]
    brain: np.ndarray  # bool (z, y, x) on the prepared grid


def brain_box(image: np.ndarray, margin: int = 0) -> Box:
    """Bounding box of voxels non-zero in any channel of ``image`` (C, z, y, x)."""
    mask = np.any(image != 0, axis=0)
    if not mask.any():
        raise InputError("All sequences are zero everywhere: there is no brain to segment.")
    box = []
    for axis in range(3):
        other = tuple(a for a in range(3) if a != axis)
        nz = np.flatnonzero(mask.any(axis=other))
        box.append((max(int(nz[0]) - margin, 0), min(int(nz[-1]) + 1 + margin, mask.shape[axis])))
    return tuple(box)  # type: ignore[return-value]


def crop(array: np.ndarray, box: Box) -> np.ndarray:
    """Crop the last three axes of ``array`` to ``box``."""
    (z0, z1), (y0, y1), (x0, x1) = box
    return array[..., z0:z1, y0:y1, x0:x1]


def scale_percentile(image: np.ndarray, percentile: float = 99.9, mask: Optional[np.ndarray] = None) -> np.ndarray:
    """Per channel: divide by the ``percentile`` of voxels in ``mask`` (non-zero if None), clip to [0, 1]."""
    out = np.empty(image.shape, dtype=np.float32)
    for c in range(image.shape[0]):
        ch = image[c]
        sel = ch[mask] if mask is not None else ch[ch != 0]
        top = float(np.percentile(sel, percentile)) if sel.size else 0.0
        if top <= 0:
            out[c] = 0.0
            continue
        np.clip(ch / top, 0.0, 1.0, out=out[c])
    return out


def zoom_factors(spacing_xyz: Tuple[float, ...], target_xyz: Tuple[float, ...]) -> Tuple[float, float, float]:
    """Per array axis (z, y, x) zoom factor from ``spacing_xyz`` to ``target_xyz``."""
    return (spacing_xyz[2] / target_xyz[2], spacing_xyz[1] / target_xyz[1], spacing_xyz[0] / target_xyz[0])


def resize(array: np.ndarray, shape: Tuple[int, int, int], order: int = 1) -> np.ndarray:
    """Resample the last three axes of ``array`` to ``shape`` (voxel-edge aligned)."""
    from scipy import ndimage

    if tuple(array.shape[-3:]) == tuple(shape):
        return array
    factors = [s / o for s, o in zip(shape, array.shape[-3:])]
    if array.ndim == 3:
        return ndimage.zoom(array, factors, order=order, grid_mode=True, mode="grid-constant")
    return np.stack([resize(a, shape, order) for a in array])


def prepare(image: np.ndarray, spacing_xyz: Tuple[float, float, float], cfg: PreprocessConfig) -> Prepared:
    """Crop, resample and scale a (C, z, y, x) image as :class:`PreprocessConfig` says."""
    box = brain_box(image, cfg.crop_margin)
    cropped = crop(image, box)
    crop_shape = tuple(cropped.shape[1:])
    if cfg.spacing is not None:
        f = zoom_factors(spacing_xyz, cfg.spacing)
        target = tuple(max(int(round(s * z)), 1) for s, z in zip(crop_shape, f))
        cropped = resize(cropped.astype(np.float32, copy=False), target, order=1)  # type: ignore[arg-type]
    brain = np.any(cropped != 0, axis=0)
    scaled = scale_percentile(cropped, cfg.percentile, brain)
    return Prepared(scaled, box, tuple(image.shape[1:]), crop_shape, brain)  # type: ignore[arg-type]


def prepare_label(label: np.ndarray, prepared: Prepared) -> np.ndarray:
    """Crop (and resample, nearest neighbour) a label map onto the prepared grid."""
    cropped = crop(label, prepared.box)
    return resize(cropped, prepared.image.shape[1:], order=0).astype(label.dtype, copy=False)  # type: ignore[arg-type]


def restore_scores(scores: np.ndarray, prepared: Prepared) -> np.ndarray:
    """Class scores (K, z, y, x) on the prepared grid -> (K, crop) (linear resampling)."""
    return resize(scores, prepared.crop_shape, order=1)


def restore(label: np.ndarray, prepared: Prepared) -> np.ndarray:
    """A label map on the prepared grid -> the full reference grid (zeros outside the crop)."""
    small = resize(label, prepared.crop_shape, order=0)
    full = np.zeros(prepared.full_shape, dtype=label.dtype)
    (z0, z1), (y0, y1), (x0, x1) = prepared.box
    full[z0:z1, y0:y1, x0:x1] = small
    return full

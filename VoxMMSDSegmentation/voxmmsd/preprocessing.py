"""Preprocessing shared by pre-training, fine-tuning and inference (numpy + SciPy only).

1. Crop to the brain's bounding box (voxels non-zero in any sequence), plus a margin.
2. Optionally resample the crop to a target spacing (e.g. 2 mm for small CPU models).
3. Scale each sequence into [0, 1] inside the brain, one of two ways (``normalization``):
   ``percentile`` (models up to 2.1.0): divide by the 99.9th percentile, clip to [0, 1];
   ``zscore`` (3.0.0 on): clip to the [0.5, 99.5] percentiles, z-score over the brain, then map
   z in [ZSCORE_LOW, ZSCORE_HIGH] linearly onto [0, 1]. The z-score does not depend on one
   pipeline's histogram (float, negative, 8-bit rescaled and z-scored inputs give the same
   network input), and the brain is found as the voxels that differ from the background value
   (the most common value on the volume's border), not as the non-zero ones.

:func:`restore` maps a label map or class scores back onto the full reference grid.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Tuple

import numpy as np

from voxmmsd.errors import InputError

NORMALIZATIONS = ("percentile", "zscore")
#: the z-score range mapped onto [0, 1] by the ``zscore`` normalisation (brain voxels below it are 0)
ZSCORE_LOW, ZSCORE_HIGH = -3.0, 5.0
#: percentiles of the brain's voxels clipped to before the z-score
ZSCORE_CLIP = (0.5, 99.5)

Box = Tuple[Tuple[int, int], Tuple[int, int], Tuple[int, int]]  # (start, stop) per array axis z, y, x


@dataclass(frozen=True)
class PreprocessConfig:
    """How images are prepared for the network (saved in model packages and runs)."""

    percentile: float = 99.9
    crop_margin: int = 2
    #: target voxel spacing in mm (x, y, z), or None to keep the reference grid's
    spacing: Optional[Tuple[float, float, float]] = None
    #: percentile (x / p99.9, the older models) | zscore (percentile-clipped z-score over the brain)
    normalization: str = "percentile"

    def __post_init__(self) -> None:
        if self.normalization not in NORMALIZATIONS:
            raise ValueError(f"preprocessing.normalization={self.normalization!r}: use one of "
                             f"{', '.join(NORMALIZATIONS)}.")

    def to_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["spacing"] = list(self.spacing) if self.spacing else None
        if self.normalization == "percentile":  # the older packages' and caches' form, unchanged
            del d["normalization"]
        return d

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "PreprocessConfig":
        sp = d.get("spacing")
        return cls(float(d.get("percentile", 99.9)), int(d.get("crop_margin", 2)),
                   tuple(float(v) for v in sp) if sp else None,  # type: ignore[arg-type]
                   str(d.get("normalization", "percentile")))


@dataclass
class Prepared:
    """A preprocessed case: ``image`` (C, z, y, x) float32 in [0, 1] and how to undo the crop/resampling."""

    image: np.ndarray
    box: Box
    full_shape: Tuple[int, int, int]
    crop_shape: Tuple[int, int, int]
    brain: np.ndarray  # bool (z, y, x) on the prepared grid


def background_values(image: np.ndarray) -> np.ndarray:
    """Per channel of ``image`` (C, z, y, x): the most common value on the volume's border faces
    (0 for skull-stripped images; the shifted background of z-scored or rescaled ones)."""
    out = np.zeros(image.shape[0], dtype=np.float64)
    for c in range(image.shape[0]):
        ch = image[c]
        faces = np.concatenate([ch[0].ravel(), ch[-1].ravel(), ch[:, 0].ravel(), ch[:, -1].ravel(),
                                ch[:, :, 0].ravel(), ch[:, :, -1].ravel()])
        faces = faces[np.isfinite(faces)]
        if faces.size == 0:
            continue
        values, counts = np.unique(faces, return_counts=True)
        top = int(np.argmax(counts))
        if counts[top] >= 0.5 * faces.size:  # a real background, not a head that fills the grid
            out[c] = float(values[top])
    return out


def foreground(image: np.ndarray, robust: bool = False) -> np.ndarray:
    """Voxels that differ from the background in any channel: non-zero ones, or with ``robust``, those
    that differ from each channel's :func:`background_values` (a channel that is constant is ignored)."""
    if not robust:
        return np.any(image != 0, axis=0)
    bg = background_values(image)
    mask = np.zeros(image.shape[1:], dtype=bool)
    for c in range(image.shape[0]):
        differs = image[c] != bg[c]
        if differs.any():
            mask |= differs
    return mask


def brain_box(image: np.ndarray, margin: int = 0, robust: bool = False) -> Box:
    """Bounding box of the :func:`foreground` voxels of ``image`` (C, z, y, x)."""
    mask = foreground(image, robust)
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


def scale_zscore(image: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per channel: clip to the :data:`ZSCORE_CLIP` percentiles of the voxels in ``mask``, z-score over
    them, map [ZSCORE_LOW, ZSCORE_HIGH] onto [0, 1]; 0 outside ``mask`` and for a constant channel."""
    out = np.zeros(image.shape, dtype=np.float32)
    span = ZSCORE_HIGH - ZSCORE_LOW
    for c in range(image.shape[0]):
        ch = image[c]
        sel = ch[mask]
        sel = sel[np.isfinite(sel)]
        if sel.size < 2:
            continue
        lo, hi = (float(v) for v in np.percentile(sel, ZSCORE_CLIP))
        if hi <= lo:
            continue
        clipped = np.clip(sel, lo, hi)
        mean, std = float(clipped.mean()), float(clipped.std())
        if std <= 0:
            continue
        z = (np.clip(ch, lo, hi) - mean) / std
        np.clip((z - ZSCORE_LOW) / span, 0.0, 1.0, out=out[c])
        out[c][~mask] = 0.0
    return out


def normalize(image: np.ndarray, cfg: "PreprocessConfig", mask: np.ndarray) -> np.ndarray:
    """Scale ``image`` (C, z, y, x) into [0, 1] the way ``cfg.normalization`` says."""
    if cfg.normalization == "zscore":
        return scale_zscore(image, mask)
    return scale_percentile(image, cfg.percentile, mask)


def zoom_factors(spacing_xyz: Tuple[float, ...], target_xyz: Tuple[float, ...]) -> Tuple[float, float, float]:
    """Per array axis (z, y, x) zoom factor from ``spacing_xyz`` to ``target_xyz``."""
    return (spacing_xyz[2] / target_xyz[2], spacing_xyz[1] / target_xyz[1], spacing_xyz[0] / target_xyz[0])


def resize(array: np.ndarray, shape: Tuple[int, int, int], order: int = 1) -> np.ndarray:
    """Resample the last three axes of ``array`` to ``shape`` (voxel-edge aligned).

    ``order`` 1 on a floating array runs :func:`voxmmsd.interp.zoom_linear` (SciPy's values, several
    times faster); other orders and dtypes run ``scipy.ndimage.zoom``."""
    from scipy import ndimage

    if tuple(array.shape[-3:]) == tuple(shape):
        return array
    if order == 1 and array.dtype.kind == "f":
        from voxmmsd.interp import zoom_linear

        return zoom_linear(array, shape)
    factors = [s / o for s, o in zip(shape, array.shape[-3:])]
    if array.ndim == 3:
        return ndimage.zoom(array, factors, order=order, grid_mode=True, mode="grid-constant")
    return np.stack([resize(a, shape, order) for a in array])


def prepare(image: np.ndarray, spacing_xyz: Tuple[float, float, float], cfg: PreprocessConfig) -> Prepared:
    """Crop, resample and scale a (C, z, y, x) image as :class:`PreprocessConfig` says."""
    robust = cfg.normalization == "zscore"
    box = brain_box(image, cfg.crop_margin, robust)
    cropped = crop(image, box)
    crop_shape = tuple(cropped.shape[1:])
    if cfg.spacing is not None:
        f = zoom_factors(spacing_xyz, cfg.spacing)
        target = tuple(max(int(round(s * z)), 1) for s, z in zip(crop_shape, f))
        cropped = resize(cropped.astype(np.float32, copy=False), target, order=1)  # type: ignore[arg-type]
    brain = foreground(cropped, robust) if not robust else _resampled_mask(image, box, cropped.shape[1:], robust)
    scaled = normalize(cropped, cfg, brain)
    return Prepared(scaled, box, tuple(image.shape[1:]), crop_shape, brain)  # type: ignore[arg-type]


def _resampled_mask(image: np.ndarray, box: Box, shape, robust: bool) -> np.ndarray:
    """The foreground of ``image`` in ``box``, on a grid of ``shape`` (nearest neighbour)."""
    mask = crop(foreground(image, robust), box)
    return resize(mask.astype(np.uint8), tuple(shape), order=0).astype(bool)  # type: ignore[arg-type]


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

"""The exam QC picture (``registration_qc.png``): is every sequence aligned with the reference, and is the brain
mask on the brain?

One row per sequence, three planes (axial, coronal, sagittal through the brain's centre): the
reference in magenta, the sequence (as resampled onto the reference) in green, so aligned
structures come out grey-white and any shift shows as coloured fringes. The first row shows the
reference with the brain mask's outline in yellow (when brain extraction ran).
"""

from __future__ import annotations

from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np
from scipy import ndimage

from voxmmsd.io.png import GAP, grey_window, scale_nearest

PANEL = 200
YELLOW = np.array([255, 220, 0], np.uint8)


def _planes(volume: np.ndarray, centre: Tuple[int, int, int]) -> List[np.ndarray]:
    z, y, x = centre
    return [volume[z], volume[::-1, y], volume[::-1, :, x]]


def _grey(plane: np.ndarray, window: Tuple[float, float]) -> np.ndarray:
    lo, hi = window
    return np.clip((plane.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0)


def fusion(reference: np.ndarray, moving: np.ndarray, ref_window: Tuple[float, float],
           mov_window: Tuple[float, float]) -> np.ndarray:
    """RGB uint8 of two planes: reference in magenta (red + blue), moving in green."""
    r = _grey(reference, ref_window)
    g = _grey(moving, mov_window)
    return np.round(np.stack([r, g, r], axis=-1) * 255.0).astype(np.uint8)


def outline(mask: np.ndarray) -> np.ndarray:
    """The border pixels of a 2-D boolean mask."""
    return mask & ~ndimage.binary_erosion(mask, border_value=0)


def exam_picture(reference: np.ndarray, others: Mapping[str, np.ndarray], spacing_xyz: Sequence[float],
                 brain_mask: Optional[np.ndarray] = None) -> np.ndarray:
    """The picture (RGB uint8): reference (+ mask outline) on top, one fusion row per entry of ``others``."""
    sx, sy, sz = (float(s) for s in spacing_xyz)
    where = brain_mask if brain_mask is not None and brain_mask.any() else reference != 0
    idx = np.argwhere(where)
    centre = tuple(int(v) for v in np.round(idx.mean(axis=0))) if idx.size else tuple(s // 2 for s in reference.shape)
    mm = [(sy, sx), (sz, sx), (sz, sy)]
    ref_planes = _planes(reference, centre)  # type: ignore[arg-type]
    ref_window = grey_window(ref_planes)
    rows = []
    top = []
    mask_planes = _planes(brain_mask.astype(bool), centre) if brain_mask is not None else None  # type: ignore[arg-type]
    for i, plane in enumerate(ref_planes):
        rgb = np.repeat(np.round(_grey(plane, ref_window) * 255.0).astype(np.uint8)[..., None], 3, axis=2)
        if mask_planes is not None:
            rgb[outline(mask_planes[i])] = YELLOW
        top.append(scale_nearest(rgb, *mm[i], PANEL))
    rows.append(top)
    for volume in others.values():
        planes = _planes(volume, centre)  # type: ignore[arg-type]
        window = grey_window(planes)
        rows.append([scale_nearest(fusion(r, m, ref_window, window), *mm[i], PANEL)
                     for i, (r, m) in enumerate(zip(ref_planes, planes))])
    lines = []
    for row in rows:
        parts: List[np.ndarray] = []
        for panel in row:
            parts += [panel, np.zeros((PANEL, GAP, 3), np.uint8)]
        lines += [np.concatenate(parts[:-1], axis=1), np.zeros((GAP, sum(p.shape[1] for p in parts[:-1]), 3),
                                                                np.uint8)]
    return np.concatenate(lines[:-1], axis=0)

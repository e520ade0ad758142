"""The QC picture: three orthogonal planes through the tumour, the segmentation overlaid.

Pure numpy rendering (nearest-neighbour scaling to square millimetres, a grey window
from the shown planes, label colours blended at 45 %) written by :mod:`voxmmsd.io.png`.
The title and the legend go into the PNG's text chunks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, List, Tuple

import numpy as np

from voxmmsd.io.labels import LABEL_TABLE, LabelInfo
from voxmmsd.io.png import GAP, grey_window, scale_nearest, write_png

ALPHA = 0.45
PANEL_HEIGHT = 320


def tumour_centre(label: np.ndarray, fallback: np.ndarray) -> Tuple[int, ...]:
    """Index (z, y, x) of the tumour's centre of mass, else of the non-zero ``fallback`` voxels, else the middle."""
    for mask in (label > 0, fallback != 0):
        idx = np.argwhere(mask)
        if idx.size:
            return tuple(int(v) for v in np.round(idx.mean(axis=0)))
    return tuple(s // 2 for s in label.shape)


def overlay(image: np.ndarray, label: np.ndarray, window: Tuple[float, float],
            table: Iterable[LabelInfo] = LABEL_TABLE) -> np.ndarray:
    """RGB uint8 of a grey ``image`` plane with ``label`` colours blended in."""
    lo, hi = window
    grey = np.clip((image.astype(np.float32) - lo) / (hi - lo), 0.0, 1.0) * 255.0
    rgb = np.repeat(grey[..., None], 3, axis=2)
    for info in table:
        mask = label == info.value
        if info.value == 0 or not mask.any():
            continue
        colour = np.asarray(info.color, np.float32) * 255.0
        rgb[mask] = (1.0 - ALPHA) * rgb[mask] + ALPHA * colour
    return np.round(rgb).astype(np.uint8)


def qc_picture(image: np.ndarray, label: np.ndarray, spacing_xyz: Iterable[float],
               table: Iterable[LabelInfo] = LABEL_TABLE, height: int = PANEL_HEIGHT) -> np.ndarray:
    """Axial, coronal and sagittal planes through the tumour side by side (RGB uint8).

    ``image`` and ``label`` are (z, y, x) arrays; axial planes are shown with the first
    row at the top, coronal and sagittal ones with the last slice at the top.
    """
    if image.shape != label.shape or image.ndim != 3:
        raise ValueError(f"image {image.shape} and label {label.shape} must be the same 3-D shape")
    table = tuple(table)
    sx, sy, sz = (float(s) for s in spacing_xyz)
    z, y, x = tumour_centre(label, image)
    planes = [(image[z], label[z], sy, sx),
              (image[::-1, y], label[::-1, y], sz, sx),
              (image[::-1, :, x], label[::-1, :, x], sz, sy)]
    window = grey_window([p[0] for p in planes])
    panels: List[np.ndarray] = []
    for img, lab, row_mm, col_mm in planes:
        rgb = overlay(img, lab, window, table)
        panels.append(scale_nearest(rgb, row_mm, col_mm, height))
        panels.append(np.zeros((height, GAP, 3), np.uint8))
    return np.concatenate(panels[:-1], axis=1)


def write_qc_png(path: Path, image: np.ndarray, label: np.ndarray, spacing_xyz: Iterable[float],
                 title: str, table: Iterable[LabelInfo] = LABEL_TABLE) -> Path:
    """Write the QC picture to ``path`` (atomically), with ``title`` and the legend as PNG text."""
    table = tuple(table)
    z, y, x = tumour_centre(label, image)
    legend = "; ".join(f"{i.value} {i.name} rgb{tuple(int(round(255 * c)) for c in i.color)}"
                       for i in table if i.value)
    text = {"Title": title,
            "Description": f"Panels left to right: axial z={z}, coronal y={y}, sagittal x={x} (voxel indices "
                           f"z, y, x through the tumour centre); overlay {int(ALPHA * 100)}%: {legend}",
            "Software": "VoxMMSD"}
    return write_png(path, qc_picture(image, label, spacing_xyz, table), text)

"""A minimal PNG writer (8-bit grey or RGB, optional text chunks), and the helpers every QC picture uses (the grey
window, square-millimetre panels, the gap between them): numpy and zlib only.

The QC picture is written with this rather than matplotlib, so that inference neither
imports a plotting library nor pays for one (importing matplotlib alone costs longer
than the rest of the writing).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from voxmmsd.io.atomic import atomic_path

SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def encode_png(pixels: np.ndarray, text: Optional[Dict[str, str]] = None, level: int = 6) -> bytes:
    """PNG bytes of ``pixels``: uint8 (H, W) grey or (H, W, 3) RGB; ``text`` becomes tEXt chunks."""
    pixels = np.asarray(pixels)
    if pixels.dtype != np.uint8:
        raise ValueError(f"PNG pixels must be uint8, got {pixels.dtype}")
    if pixels.ndim == 2:
        colour_type, channels = 0, 1
    elif pixels.ndim == 3 and pixels.shape[2] == 3:
        colour_type, channels = 2, 3
    else:
        raise ValueError(f"PNG pixels must be (H, W) or (H, W, 3), got {pixels.shape}")
    height, width = pixels.shape[:2]
    if height == 0 or width == 0:
        raise ValueError("PNG image is empty")
    rows = pixels.reshape(height, width * channels)
    # every scan line starts with its filter type (0: none)
    raw = np.concatenate([np.zeros((height, 1), np.uint8), rows], axis=1)
    out = [SIGNATURE, _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0))]
    for key, value in (text or {}).items():
        keyword = key.encode("latin-1", "replace")[:79]
        out.append(_chunk(b"tEXt", keyword + b"\x00" + value.encode("latin-1", "replace")))
    out.append(_chunk(b"IDAT", zlib.compress(np.ascontiguousarray(raw).tobytes(), level)))
    out.append(_chunk(b"IEND", b""))
    return b"".join(out)


def write_png(path: Path, pixels: np.ndarray, text: Optional[Dict[str, str]] = None) -> Path:
    """Write ``pixels`` as a PNG file at ``path``, atomically."""
    data = encode_png(pixels, text)
    with atomic_path(Path(path)) as tmp:
        tmp.write_bytes(data)
    return Path(path)


# -- picture helpers (the segmentation QC picture, voxmmsd.infer.qc, and the exam's, voxmmsd.exam.qc) ----------

#: pixels between the panels of a picture
GAP = 6


def grey_window(planes: Sequence[np.ndarray]) -> Tuple[float, float]:
    """The 0.5-99.5 percentile window of the non-zero voxels of the shown planes."""
    values = np.concatenate([p[p != 0].ravel() for p in planes]).astype(np.float64)
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, (0.5, 99.5))
    return float(lo), float(hi if hi > lo else lo + 1.0)


def scale_nearest(plane: np.ndarray, row_mm: float, col_mm: float, height: int) -> np.ndarray:
    """``plane`` resized (nearest neighbour) to ``height`` rows with square pixels in millimetres."""
    rows, cols = plane.shape[:2]
    width = max(1, int(round(height * (cols * col_mm) / (rows * row_mm))))
    ri = np.minimum((np.arange(height) + 0.5) * rows / height, rows - 1).astype(np.intp)
    ci = np.minimum((np.arange(width) + 0.5) * cols / width, cols - 1).astype(np.intp)
    return plane[ri][:, ci]

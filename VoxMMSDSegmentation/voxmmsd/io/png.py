"""A minimal PNG writer (8-bit grey or RGB, optional text chunks): numpy and zlib only.

The QC picture is written with this rather than matplotlib, so that inference neither
imports a plotting library nor pays for one (importing matplotlib alone costs longer
than the rest of the writing).
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Dict, Optional

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

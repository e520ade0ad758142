"""SiaBloMM: Siamese block-wise modality masking.

Each view is split into ``block``-sized cubes and every (sequence, block) pair is
hidden independently with probability ``ratio``. A mask is kept as its small block
grid (``True`` = visible); it is expanded to voxels only where it is applied, by
repetition (never by interpolation).
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np
import torch


def grid_shape(crop: Sequence[int], block: int) -> Tuple[int, int, int]:
    """Blocks per axis of a ``crop`` (z, y, x); the crop must be a multiple of ``block``."""
    if any(int(c) % block for c in crop):
        raise ValueError(f"crop {tuple(crop)} is not a multiple of the block size {block}")
    return tuple(int(c) // block for c in crop)  # type: ignore[return-value]


def draw_block_mask(rng: np.random.Generator, channels: int, crop: Sequence[int], block: int,
                    ratio: float) -> np.ndarray:
    """Visible-block grid, bool ``(channels, D/block, H/block, W/block)``: each entry hidden with prob ``ratio``."""
    return rng.random((channels,) + grid_shape(crop, block)) >= ratio


def expand_mask(grid: np.ndarray, block: int) -> np.ndarray:
    """Block grid ``(..., d, h, w)`` -> voxel mask ``(..., d*block, h*block, w*block)``."""
    out = grid
    for axis in (-3, -2, -1):
        out = np.repeat(out, block, axis=axis)
    return out


def expand_mask_torch(grid: torch.Tensor, block: int) -> torch.Tensor:
    """Torch twin of :func:`expand_mask` (runs on the training device)."""
    out = grid
    for dim in (-3, -2, -1):
        out = out.repeat_interleave(block, dim=dim)
    return out


def visible_at(grid: np.ndarray, coords: np.ndarray, block: int) -> np.ndarray:
    """Whether each sequence is unmasked at voxel ``coords`` (K, 3): bool ``(K, channels)``."""
    b = np.asarray(coords, dtype=np.int64) // block
    return grid[:, b[:, 0], b[:, 1], b[:, 2]].T

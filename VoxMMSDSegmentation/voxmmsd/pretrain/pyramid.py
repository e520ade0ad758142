"""Multi-scale voxel features from the decoder's feature pyramid."""

from __future__ import annotations

from typing import Sequence

import torch


def pyramid_indices(coords: torch.Tensor, level: int) -> torch.Tensor:
    """Voxel ``coords`` (n, 3) at full resolution -> their cell at pyramid ``level`` (1/2**level size)."""
    return torch.div(coords, 2 ** level, rounding_mode="floor")


def select_from_pyramid(pyramid: Sequence[torch.Tensor], batch: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
    """Concatenated features of voxels across a pyramid.

    ``pyramid``: tensors ``(B, c_i, D/2**i, H/2**i, W/2**i)``, finest first; ``batch`` (n,)
    sample index per voxel; ``coords`` (n, 3) z, y, x at full resolution.
    Returns ``(n, sum_i c_i)``: level i read at ``coords // 2**i``.
    """
    parts = []
    for level, feats in enumerate(pyramid):
        idx = pyramid_indices(coords, level)
        parts.append(feats[batch, :, idx[:, 0], idx[:, 1], idx[:, 2]])
    return torch.cat(parts, dim=1)

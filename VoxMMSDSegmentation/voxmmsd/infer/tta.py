"""Mirroring test-time augmentation: average the logits of the input flipped along spatial axes."""

from __future__ import annotations

import itertools
from typing import List, Tuple

import numpy as np

from voxmmsd.infer.window import Forward


def mirror_axes(n_axes: int = 3) -> List[Tuple[int, ...]]:
    """Every subset of the spatial axes (2, 3, 4) of an (N, C, D, H, W) array: 8 for three axes."""
    spatial = tuple(range(2, 2 + n_axes))
    return [c for r in range(n_axes + 1) for c in itertools.combinations(spatial, r)]


def with_mirroring(forward: Forward, axes: List[Tuple[int, ...]] = None) -> Forward:  # type: ignore[assignment]
    """A forward that averages ``forward`` over mirrored copies of its input (flipped back before averaging)."""
    combos = axes if axes is not None else mirror_axes()

    def mirrored(x: np.ndarray) -> np.ndarray:
        total = None
        for flip in combos:
            xi = np.ascontiguousarray(np.flip(x, flip)) if flip else x
            out = forward(xi)
            out = np.flip(out, flip) if flip else out
            total = out.astype(np.float32, copy=True) if total is None else total + out
        return total / float(len(combos))

    return mirrored

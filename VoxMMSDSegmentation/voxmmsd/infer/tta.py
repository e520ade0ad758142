"""Mirroring test-time augmentation: average the logits of the input flipped along spatial axes."""

from __future__ import annotations

import itertools
from typing import Callable, List, Optional, Tuple

import numpy as np

from voxmmsd.infer.window import Forward


def mirror_axes(n_axes: int = 3) -> List[Tuple[int, ...]]:
    """Every subset of the spatial axes (2, 3, 4) of an (N, C, D, H, W) array: 8 for three axes."""
    spatial = tuple(range(2, 2 + n_axes))
    return [c for r in range(n_axes + 1) for c in itertools.combinations(spatial, r)]


def with_mirroring(forward: Forward, axes: Optional[List[Tuple[int, ...]]] = None,
                   on_pass: Optional[Callable[[np.ndarray], None]] = None) -> Forward:
    """A forward that averages ``forward`` over mirrored copies of its input (flipped back before averaging).

    ``on_pass`` sees each pass's output (flipped back), e.g. to measure how much the passes disagree.
    """
    combos = axes if axes is not None else mirror_axes()

    def mirrored(x: np.ndarray) -> np.ndarray:
        total: Optional[np.ndarray] = None
        for flip in combos:
            xi = np.ascontiguousarray(np.flip(x, flip)) if flip else x
            out = forward(xi)
            out = np.flip(out, flip) if flip else out
            if on_pass is not None:
                on_pass(out)
            total = out.astype(np.float32, copy=True) if total is None else total + out
        assert total is not None, "no mirroring combination"
        return total / float(len(combos))

    return mirrored

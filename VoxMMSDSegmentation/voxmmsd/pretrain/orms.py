"""ORMS: overlapping random modality sampling of voxel pairs.

Candidate voxels are drawn directly inside the overlap of the two views (no argwhere
over the volume, no retry loop). A voxel is usable in a view when at least one
sequence is *visible* there: its block is unmasked and the sequence is non-zero at
the voxel. For each usable voxel, each view draws one of its visible sequences at
random; the pair is kept when both views have one. (The authors draw a sequence first
and reject the pair if it is invisible; given a voxel, both rules pick the sequences
uniformly among the visible ones; ours does not favour voxels with more visible sequences.)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from voxmmsd.pretrain.masking import visible_at


@dataclass(frozen=True)
class VoxelPairs:
    """``n`` paired voxels: coordinates in each view and the sequence drawn in each view.

    ``coords`` int64 ``(2, n, 3)`` (z, y, x inside view 1 and view 2, which point at the
    same voxel of the case), ``sequences`` int64 ``(2, n)``, ``valid`` bool ``(n,)``
    (False for padding when fewer than ``n`` pairs were found).
    """

    coords: np.ndarray
    sequences: np.ndarray
    valid: np.ndarray


def visibility(view: np.ndarray, grid: np.ndarray, coords: np.ndarray, block: int) -> np.ndarray:
    """bool ``(K, C)``: sequence c visible at ``coords[k]`` of ``view`` (C, D, H, W): unmasked and non-zero."""
    c = np.asarray(coords, dtype=np.int64)
    nonzero = view[:, c[:, 0], c[:, 1], c[:, 2]].T > 0
    return nonzero & visible_at(grid, c, block)


def pick_visible(rng: np.random.Generator, visible: np.ndarray) -> np.ndarray:
    """For each row of ``visible`` (K, C) one column index, uniform among its True entries (-1 if none)."""
    k, c = visible.shape
    scores = np.where(visible, rng.random((k, c)), -1.0)
    choice = scores.argmax(axis=1)
    return np.where(visible.any(axis=1), choice, -1)


def sample_pairs(rng: np.random.Generator, views: np.ndarray, grids: np.ndarray, starts: Sequence[Sequence[int]],
                 crop: Sequence[int], block: int, n_pairs: int, candidates: int = 16) -> VoxelPairs:
    """Up to ``n_pairs`` voxel pairs in the overlap of two views.

    ``views`` (2, C, D, H, W) raw (unmasked) crops; ``grids`` (2, C, d, h, w) visible-block
    grids; ``starts`` the two crop starts in the case. Draws ``candidates * n_pairs``
    distinct voxels of the overlap at a time (at most all of them).
    """
    s = np.asarray(starts, dtype=np.int64)
    lo = s.max(axis=0)
    hi = s.min(axis=0) + np.asarray(crop, dtype=np.int64)
    size = hi - lo
    coords = np.zeros((2, n_pairs, 3), dtype=np.int64)
    seqs = np.zeros((2, n_pairs), dtype=np.int64)
    valid = np.zeros(n_pairs, dtype=bool)
    if np.any(size <= 0):
        return VoxelPairs(coords, seqs, valid)
    total = int(np.prod(size))
    flat = rng.choice(total, size=min(total, candidates * n_pairs), replace=False)
    pos = np.stack(np.unravel_index(flat, tuple(int(v) for v in size)), axis=1) + lo  # case coordinates
    local = [pos - s[0], pos - s[1]]
    pick = [pick_visible(rng, visibility(views[v], grids[v], local[v], block)) for v in (0, 1)]
    keep = np.flatnonzero((pick[0] >= 0) & (pick[1] >= 0))[:n_pairs]
    n = keep.size
    for v in (0, 1):
        coords[v, :n] = local[v][keep]
        seqs[v, :n] = pick[v][keep]
    valid[:n] = True
    return VoxelPairs(coords, seqs, valid)

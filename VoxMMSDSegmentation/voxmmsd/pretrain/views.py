"""Two overlapping crops of one case, sharing an anchor voxel (as in vox2vec).

The authors draw the two crops independently and retry until they overlap enough;
here an anchor voxel is drawn first and each crop is placed so that it contains the
anchor, so the overlap is never empty and no retry is needed.
"""

from __future__ import annotations

from typing import Sequence, Tuple

import numpy as np

Start = Tuple[int, int, int]


def check_fits(shape: Sequence[int], crop: Sequence[int]) -> None:
    """Raise ValueError if ``crop`` (z, y, x) is larger than ``shape`` along any axis."""
    if len(shape) != 3 or len(crop) != 3:
        raise ValueError(f"need 3-D shapes, got {tuple(shape)} and {tuple(crop)}")
    if any(c > s for c, s in zip(crop, shape)):
        raise ValueError(f"crop {tuple(crop)} is larger than the volume {tuple(shape)}")


def sample_start_around(rng: np.random.Generator, shape: Sequence[int], crop: Sequence[int],
                        anchor: Sequence[int]) -> Start:
    """A crop start (z, y, x), uniform among those whose crop lies in ``shape`` and contains ``anchor``."""
    starts = []
    for s, c, a in zip(shape, crop, anchor):
        lo = max(0, int(a) - c + 1)
        hi = min(int(a), s - c)
        starts.append(int(rng.integers(lo, hi + 1)))
    return tuple(starts)  # type: ignore[return-value]


def sample_view_pair(rng: np.random.Generator, shape: Sequence[int], crop: Sequence[int]) -> Tuple[Start, Start]:
    """Starts of two ``crop``-sized views of a ``shape`` volume that share a random anchor voxel."""
    check_fits(shape, crop)
    anchor = tuple(int(rng.integers(0, s)) for s in shape)
    return sample_start_around(rng, shape, crop, anchor), sample_start_around(rng, shape, crop, anchor)


def overlap_box(start1: Sequence[int], start2: Sequence[int], crop: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """The overlap of two crops as ``(lo, hi)`` volume coordinates (hi exclusive); empty if any hi <= lo."""
    s1 = np.asarray(start1, dtype=np.int64)
    s2 = np.asarray(start2, dtype=np.int64)
    c = np.asarray(crop, dtype=np.int64)
    return np.maximum(s1, s2), np.minimum(s1 + c, s2 + c)


def read_crop(image: np.ndarray, start: Sequence[int], crop: Sequence[int]) -> np.ndarray:
    """Copy the ``crop`` at ``start`` of the last three axes of ``image`` (a memmap reads only that part)."""
    z, y, x = (int(v) for v in start)
    d, h, w = (int(v) for v in crop)
    return np.ascontiguousarray(image[..., z:z + d, y:y + h, x:x + w])

"""Run a network over a whole crop in one pass, or in Gaussian-blended sliding windows (numpy only).

A *forward* is any callable ``f(x) -> logits`` with ``x`` (1, C, D, H, W) float32 and
logits (1, K, D, H, W), D, H, W multiples of 16. Whole-crop inference pads the crop to
a multiple of 16 and runs it once; sliding windows cover the crop with overlapping
patches whose logits are blended with a Gaussian importance map (centre weighs most).
"""

from __future__ import annotations

import itertools
import logging
from typing import Callable, List, Optional, Sequence, Tuple

import numpy as np

log = logging.getLogger(__name__)

Forward = Callable[[np.ndarray], np.ndarray]
Shape3 = Tuple[int, int, int]


def round_up(n: int, divisor: int) -> int:
    return int(-(-n // divisor) * divisor)


def pad_to(image: np.ndarray, shape: Sequence[int]) -> Tuple[np.ndarray, Tuple[slice, slice, slice]]:
    """Zero-pad the last three axes of ``image`` (C, z, y, x) to ``shape`` (centred).

    Returns the padded array and the slices that cut the original back out.
    """
    pads, cut = [], []
    for n, m in zip(image.shape[-3:], shape):
        if m < n:
            raise ValueError(f"cannot pad size {n} down to {m}")
        before = (m - n) // 2
        pads.append((before, m - n - before))
        cut.append(slice(before, before + n))
    if all(p == (0, 0) for p in pads):
        return image, tuple(cut)  # type: ignore[return-value]
    padded = np.pad(image, [(0, 0)] * (image.ndim - 3) + pads)
    return padded, tuple(cut)  # type: ignore[return-value]


def gaussian_importance(patch: Sequence[int], sigma_scale: float = 0.125) -> np.ndarray:
    """Separable Gaussian weight map of shape ``patch`` (max 1, min > 0), sigma = size * ``sigma_scale``."""
    axes = []
    for n in patch:
        x = np.arange(n, dtype=np.float64) - (n - 1) / 2.0
        sigma = max(n * sigma_scale, 1e-6)
        axes.append(np.exp(-0.5 * (x / sigma) ** 2))
    w = axes[0][:, None, None] * axes[1][None, :, None] * axes[2][None, None, :]
    w = w / w.max()
    return np.maximum(w, 1e-3).astype(np.float32)


def window_starts(size: int, patch: int, overlap: float) -> List[int]:
    """Start indices of windows of ``patch`` covering ``size`` with at least ``overlap`` fraction shared."""
    if size <= patch:
        return [0]
    step = max(int(patch * (1.0 - overlap)), 1)
    n = int(np.ceil((size - patch) / step)) + 1
    if n == 1:
        return [0]
    return [int(round(i * (size - patch) / (n - 1))) for i in range(n)]


def plan_windows(shape: Sequence[int], patch: Sequence[int], overlap: float) -> List[Tuple[slice, slice, slice]]:
    """Every window (as slices) over an array of ``shape`` (z, y, x); ``shape`` >= ``patch``."""
    starts = [window_starts(s, p, overlap) for s, p in zip(shape, patch)]
    return [tuple(slice(a, a + p) for a, p in zip(combo, patch))  # type: ignore[misc]
            for combo in itertools.product(*starts)]


def whole(image: np.ndarray, forward: Forward, divisor: int = 16) -> np.ndarray:
    """Logits (K, z, y, x) of ``image`` (C, z, y, x) from one pass over the zero-padded crop.

    ``forward`` may also return labels (1, D, H, W); they come back as (z, y, x).
    """
    target = [round_up(n, divisor) for n in image.shape[-3:]]
    padded, cut = pad_to(image, target)
    out = forward(np.ascontiguousarray(padded[None], dtype=np.float32))[0]
    return np.ascontiguousarray(out[(Ellipsis,) + cut])


def sliding(image: np.ndarray, forward: Forward, patch: Sequence[int], overlap: float = 0.5,
            gaussian: bool = True, progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """Logits (K, z, y, x) of ``image`` (C, z, y, x) blended from windows of ``patch`` (multiples of 16).

    Axes smaller than the patch are zero-padded first and cut back afterwards.
    """
    shape = [max(n, p) for n, p in zip(image.shape[-3:], patch)]
    padded, cut = pad_to(image, shape)
    windows = plan_windows(shape, patch, overlap)
    weight = gaussian_importance(patch) if gaussian else np.ones(tuple(patch), dtype=np.float32)
    acc: Optional[np.ndarray] = None
    norm = np.zeros(tuple(shape), dtype=np.float32)
    for i, win in enumerate(windows):
        x = np.ascontiguousarray(padded[(slice(None),) + win][None], dtype=np.float32)
        out = forward(x)[0]
        if acc is None:
            acc = np.zeros((out.shape[0],) + tuple(shape), dtype=np.float32)
        acc[(slice(None),) + win] += out * weight
        norm[win] += weight
        if progress is not None:
            progress(i + 1, len(windows))
    assert acc is not None
    acc /= norm[None]
    return np.ascontiguousarray(acc[(slice(None),) + cut])


def counted(forward: Forward, total: int, progress: Callable[[int, int], None]) -> Forward:
    """``forward`` that reports its i-th call as ``progress(i, total)`` (e.g. the TTA passes of one crop)."""
    calls = [0]

    def run(x: np.ndarray) -> np.ndarray:
        out = forward(x)
        calls[0] += 1
        progress(min(calls[0], total), total)
        return out

    return run


def whole_fits(shape: Sequence[int], max_voxels: Optional[int], divisor: int = 16) -> bool:
    """Whether a whole-crop pass over ``shape`` (padded) stays within ``max_voxels`` (None: always)."""
    if max_voxels is None:
        return True
    return int(np.prod([round_up(n, divisor) for n in shape])) <= max_voxels


def fallback_patches(patch: Optional[Sequence[int]]) -> List[Shape3]:
    """Smaller and smaller window sizes to try after running out of memory."""
    start = min(patch) if patch else 160
    sizes = [s for s in (128, 96, 64, 32) if s < start]
    return [(s, s, s) for s in sizes]

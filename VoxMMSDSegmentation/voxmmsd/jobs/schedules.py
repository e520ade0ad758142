"""Per-iteration schedules as arrays indexed by the global step (resumable, testable)."""

from __future__ import annotations

import numpy as np


def warmup_steps(fraction: float, total: int) -> int:
    """The iterations of a warm-up given as a fraction of the run (``lr_warmup`` of every training command)."""
    return int(round(min(max(fraction, 0.0), 1.0) * total))


def cosine_schedule(start: float, end: float, total: int, warmup: int = 0, warmup_start: float = 0.0) -> np.ndarray:
    """``total`` values: linear warm-up from ``warmup_start`` to ``start``, then cosine to ``end``."""
    if total <= 0:
        raise ValueError("total must be positive")
    warmup = min(max(warmup, 0), total)
    warm = np.linspace(warmup_start, start, warmup, endpoint=False) if warmup else np.zeros(0)
    n = total - warmup
    steps = np.arange(n)
    cos = end + 0.5 * (start - end) * (1 + np.cos(np.pi * steps / max(n - 1, 1))) if n else np.zeros(0)
    return np.concatenate([warm, cos]).astype(np.float64)


def linear_then_constant(start: float, end: float, total: int, ramp: int) -> np.ndarray:
    """Linear ramp from ``start`` to ``end`` over ``ramp`` steps, then ``end`` (teacher temperature)."""
    ramp = min(max(ramp, 0), total)
    return np.concatenate([np.linspace(start, end, ramp, endpoint=False), np.full(total - ramp, end)])

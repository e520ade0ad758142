"""Random 3-D shapes for the metric tests (smoothed noise, thresholded)."""

from __future__ import annotations

from typing import Tuple

import numpy as np
from scipy import ndimage


def blob(rng: np.random.Generator, shape: Tuple[int, int, int], keep: float, sigma: float = 2.5) -> np.ndarray:
    """Boolean mask: the top ``keep`` fraction of Gaussian-smoothed noise (one or several lumps)."""
    field = ndimage.gaussian_filter(rng.normal(size=shape), sigma)
    return field > np.quantile(field, 1.0 - keep)


def random_pair(rng: np.random.Generator, low: int = 16, high: int = 40):
    """(pred, ref, spacing_xyz): two overlapping random masks on a random anisotropic grid."""
    shape = tuple(int(v) for v in rng.integers(low, high, 3))
    spacing = tuple(float(v) for v in rng.uniform(0.5, 3.0, 3))
    ref = blob(rng, shape, float(rng.uniform(0.03, 0.3)))
    pred = blob(rng, shape, float(rng.uniform(0.03, 0.3))) | (ref & (rng.random(shape) < 0.6))
    return pred, ref, spacing

"""Intensity augmentations of the masked views: random parameters, deterministic application.

:func:`draw_params` (numpy, in the loader) draws every random choice of one view into a
small ``(6, C)`` array plus a noise seed; :func:`apply_intensity` (torch, on the training
device) applies them, deterministically. Each augmentation fires with its stated
probability ``p`` (the authors' code fires four of them with ``1 - p``).

Rows of the parameter array, with their neutral value:
``NOISE`` std (0), ``BLUR`` sigma (0), ``MULT`` factor (1), ``ADD`` offset (0),
``CONTRAST`` factor (1), ``GAMMA`` exponent (1). Order of application: noise, blur,
multiplicative brightness, additive brightness, contrast, gamma (the authors' order).
"""

from __future__ import annotations

import math
from typing import List, Sequence

import numpy as np
import torch

from voxmmsd.pretrain.config import AugmentConfig

NOISE, BLUR, MULT, ADD, CONTRAST, GAMMA = range(6)
NEUTRAL = np.array([0.0, 0.0, 1.0, 0.0, 1.0, 1.0], dtype=np.float32)


def neutral_params(channels: int) -> np.ndarray:
    """Parameters that leave a view unchanged: ``(6, channels)``."""
    return np.repeat(NEUTRAL[:, None], channels, axis=1).copy()


def draw_params(rng: np.random.Generator, cfg: AugmentConfig, channels: int) -> np.ndarray:
    """Random augmentation parameters of one view, float32 ``(6, channels)``."""
    p = neutral_params(channels)
    if not cfg.enabled:
        return p
    c = channels
    # Gaussian noise: each sequence with probability noise_prob
    p[NOISE] = np.where(rng.random(c) < cfg.noise_prob, cfg.noise_std, 0.0)
    # Gaussian blur: fires with blur_prob; then each sequence with blur_channel_prob, own sigma
    on = rng.random() < cfg.blur_prob
    chan = rng.random(c) < cfg.blur_channel_prob
    p[BLUR] = np.where(on & chan, rng.uniform(*cfg.blur_sigma, size=c), 0.0)
    # multiplicative brightness: one factor for the view, applied to each sequence with mult_channel_prob
    on = rng.random() < cfg.mult_prob
    chan = rng.random(c) < cfg.mult_channel_prob
    p[MULT] = np.where(on & chan, rng.uniform(*cfg.mult_range), 1.0)
    # additive brightness: per-sequence offset, each sequence with add_channel_prob
    on = rng.random() < cfg.add_prob
    chan = rng.random(c) < cfg.add_channel_prob
    p[ADD] = np.where(on & chan, rng.uniform(*cfg.add_range, size=c), 0.0)
    # contrast (range preserved): per-sequence factor
    on = rng.random() < cfg.contrast_prob
    p[CONTRAST] = rng.uniform(*cfg.contrast_range, size=c) if on else 1.0
    # gamma: each sequence with gamma_prob
    chan = rng.random(c) < cfg.gamma_prob
    p[GAMMA] = np.where(chan, rng.uniform(*cfg.gamma_range, size=c), 1.0)
    return p.astype(np.float32)


def gaussian_weights(sigma: float) -> List[float]:
    """Normalised 1-D Gaussian of radius ceil(3 sigma), as Python floats (no device round trips)."""
    radius = max(int(math.ceil(3.0 * sigma)), 1)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return [float(v) for v in k / k.sum()]


def gaussian_blur3d(volume: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of one ``(D, H, W)`` volume (edges replicated).

    A weighted sum of shifted copies along each axis: faster than a one-channel
    ``conv3d`` on CPUs and GPUs alike for kernels of this size.
    """
    k = gaussian_weights(sigma)
    r = len(k) // 2
    x = volume
    for dim in range(3):
        n = x.shape[dim]
        idx = torch.arange(-r, n + r, device=x.device).clamp_(0, n - 1)
        padded = x.index_select(dim, idx)
        out = padded.narrow(dim, 0, n) * k[0]
        for j in range(1, len(k)):
            out.add_(padded.narrow(dim, j, n), alpha=k[j])
        x = out
    return x


def apply_intensity(views: torch.Tensor, params: torch.Tensor, seeds: Sequence[int]) -> torch.Tensor:
    """Apply drawn parameters to views.

    ``views`` float ``(N, C, D, H, W)``; ``params`` ``(N, 6, C)`` from :func:`draw_params`;
    ``seeds`` one noise seed per view. Returns a new tensor of the same shape.
    """
    out = views.clone()
    n, c = views.shape[:2]
    prm = params.detach().to("cpu", torch.float64).numpy()
    for i in range(n):
        gen = torch.Generator(device=views.device)
        gen.manual_seed(int(seeds[i]))
        for ch in range(c):
            x = out[i, ch]
            std = prm[i, NOISE, ch]
            if std > 0:
                x = x + std * torch.randn(x.shape, generator=gen, device=x.device, dtype=x.dtype)
            sigma = prm[i, BLUR, ch]
            if sigma > 0:
                x = gaussian_blur3d(x, float(sigma))
            if prm[i, MULT, ch] != 1.0:
                x = x * float(prm[i, MULT, ch])
            if prm[i, ADD, ch] != 0.0:
                x = x + float(prm[i, ADD, ch])
            if prm[i, CONTRAST, ch] != 1.0:
                lo, hi = x.min(), x.max()
                mean = x.mean()
                x = ((x - mean) * float(prm[i, CONTRAST, ch]) + mean).clamp(lo, hi)
            if prm[i, GAMMA, ch] != 1.0:
                lo, hi = x.min(), x.max()
                span = (hi - lo).clamp_min(1e-6)  # no host sync; a flat channel stays flat
                x = ((x - lo) / span).clamp(0, 1).pow(float(prm[i, GAMMA, ch])) * span + lo
            out[i, ch] = x
    return out

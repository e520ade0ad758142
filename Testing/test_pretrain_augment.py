"""Intensity augmentations: stated probabilities, deterministic application, each operation's effect."""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage
from voxmmsd.pretrain.augment import (
    ADD,
    BLUR,
    CONTRAST,
    GAMMA,
    MULT,
    NOISE,
    apply_intensity,
    draw_params,
    gaussian_blur3d,
    neutral_params,
)
from voxmmsd.pretrain.config import AugmentConfig


def test_each_augmentation_fires_with_its_stated_probability():
    cfg = AugmentConfig()
    rng = np.random.default_rng(0)
    p = np.stack([draw_params(rng, cfg, 4) for _ in range(20000)])  # (n, 6, C)
    freq = {
        "noise": (p[:, NOISE] > 0).mean(),
        "blur": (p[:, BLUR] > 0).mean(),
        "mult": (p[:, MULT] != 1).mean(),
        "add": (p[:, ADD] != 0).mean(),
        "contrast": (p[:, CONTRAST] != 1).any(axis=1).mean(),
        "gamma": (p[:, GAMMA] != 1).mean(),
    }
    expected = {"noise": 1.0, "blur": 0.8 * 0.5, "mult": 0.85 * 0.5, "add": 0.5 * 0.8, "contrast": 0.5,
                "gamma": 0.8}
    for key, value in expected.items():
        assert abs(freq[key] - value) < 0.015, (key, freq[key], value)
    # the ranges
    assert p[:, BLUR][p[:, BLUR] > 0].min() >= 0.1 and p[:, BLUR].max() <= 2.0
    assert p[:, MULT].min() >= 0.75 and p[:, MULT].max() <= 1.25
    assert p[:, GAMMA].min() >= 0.7 and p[:, GAMMA].max() <= 1.5
    assert p[:, ADD].max() <= 0.4 and p[:, NOISE].max() == np.float32(0.05)
    # multiplicative brightness: one factor per view, shared by the sequences it touches
    for row in p[:2000, MULT]:
        touched = row[row != 1]
        assert np.allclose(touched, touched[0]) if touched.size else True


def test_disabled_and_neutral_parameters_change_nothing():
    x = torch.rand(2, 4, 16, 16, 16)
    params = torch.from_numpy(np.stack([neutral_params(4)] * 2))
    assert torch.equal(apply_intensity(x, params, [1, 2]), x)
    assert np.array_equal(draw_params(np.random.default_rng(0), AugmentConfig(enabled=False), 4), neutral_params(4))


def test_application_is_deterministic_for_given_parameters():
    rng = np.random.default_rng(5)
    params = torch.from_numpy(np.stack([draw_params(rng, AugmentConfig(), 4) for _ in range(2)]))
    x = torch.rand(2, 4, 16, 16, 16)
    a = apply_intensity(x, params, [11, 12])
    b = apply_intensity(x, params, [11, 12])
    c = apply_intensity(x, params, [11, 13])
    assert torch.equal(a, b)
    assert not torch.equal(a[1], c[1]) and torch.equal(a[0], c[0])


def _one(op: int, value: float, channel: int = 1) -> torch.Tensor:
    p = neutral_params(3)
    p[op, channel] = value
    return torch.from_numpy(p[None])


def test_each_operation():
    x = torch.rand(1, 3, 12, 12, 12) * 0.8 + 0.1
    y = apply_intensity(x, _one(MULT, 1.2), [0])
    assert torch.allclose(y[0, 1], x[0, 1] * 1.2) and torch.equal(y[0, 0], x[0, 0])
    y = apply_intensity(x, _one(ADD, 0.3), [0])
    assert torch.allclose(y[0, 1], x[0, 1] + 0.3)
    y = apply_intensity(x, _one(GAMMA, 1.5), [0])
    lo, hi = x[0, 1].min(), x[0, 1].max()
    assert torch.allclose(y[0, 1], ((x[0, 1] - lo) / (hi - lo)) ** 1.5 * (hi - lo) + lo, atol=1e-6)
    y = apply_intensity(x, _one(CONTRAST, 1.25), [0])
    assert y[0, 1].min() >= lo and y[0, 1].max() <= hi and y[0, 1].std() > x[0, 1].std()
    y = apply_intensity(x, _one(NOISE, 0.05), [0])
    assert abs(float((y - x)[0, 1].std()) - 0.05) < 0.005 and torch.equal(y[0, 2], x[0, 2])


def test_blur_matches_scipy():
    rng = np.random.default_rng(0)
    vol = rng.random((20, 24, 18)).astype(np.float32)
    for sigma in (0.4, 1.3, 2.0):
        ours = gaussian_blur3d(torch.from_numpy(vol), sigma).numpy()
        ref = ndimage.gaussian_filter(vol, sigma, mode="nearest", truncate=3.0)
        assert np.abs(ours - ref).max() < 2e-3, sigma

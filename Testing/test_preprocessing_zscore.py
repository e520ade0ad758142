"""The z-score normalisation (3.0.0 on): the network input does not depend on how a pipeline stored
the intensities (integers, float, z-scored with a shifted background, 8-bit rescaled)."""

import numpy as np
import pytest
from voxmmsd.preprocessing import PreprocessConfig, background_values, foreground, prepare, scale_zscore


def _head(seed=0):
    rng = np.random.default_rng(seed)
    img = np.zeros((4, 40, 48, 44), np.float32)
    zz, yy, xx = np.mgrid[:40, :48, :44]
    brain = ((zz - 20) / 15) ** 2 + ((yy - 24) / 18) ** 2 + ((xx - 22) / 16) ** 2 < 1
    for c in range(4):
        img[c][brain] = 300 + 80 * c + rng.normal(0, 40, int(brain.sum()))
    img[1][brain & (np.abs(zz - 20) < 3) & (np.abs(yy - 24) < 3)] = 1500  # an enhancing spot
    return np.clip(img, 1, None) * brain, brain


def test_same_input_for_zscored_and_rescaled_copies():
    img, brain = _head()
    cfg = PreprocessConfig(normalization="zscore")
    ref = prepare(img, (1.0, 1.0, 1.0), cfg)
    # z-scored over the brain, background left at the (negative) value of 0 after the shift
    z = np.empty_like(img)
    for c in range(4):
        m, s = img[c][brain].mean(), img[c][brain].std()
        z[c] = (img[c] - m) / s
    # 8-bit rescaled
    u8 = np.round(img / img.max() * 255)
    for other in (z, u8, img * 3.7 + 0.0):
        out = prepare(other, (1.0, 1.0, 1.0), cfg)
        assert out.box == ref.box
        assert out.brain.sum() == pytest.approx(ref.brain.sum(), rel=0.01)
        assert np.abs(out.image - ref.image)[:, ref.brain].mean() < 0.01


def test_percentile_normalisation_loses_a_zscored_input():
    """The old normalisation (kept for the older models) clips negative values: half the brain goes dark."""
    img, brain = _head()
    z = np.stack([(img[c] - img[c][brain].mean()) / img[c][brain].std() for c in range(4)])
    old = prepare(z, (1.0, 1.0, 1.0), PreprocessConfig())
    assert (old.image[0][old.brain] == 0).mean() > 0.3


def test_background_value_and_foreground():
    img, brain = _head()
    shifted = img - 7.0
    assert np.allclose(background_values(shifted), -7.0)
    assert (foreground(shifted, robust=True) == brain).all()
    assert foreground(shifted, robust=False).all()  # the old rule: everything is "brain"


def test_zscore_constant_channel_is_zero_and_range():
    img, brain = _head()
    img[2] = 0.0
    out = scale_zscore(img, brain)
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0
    assert not out[2].any()
    assert not out[:, ~brain].any()


def test_config_round_trip_and_older_packages():
    cfg = PreprocessConfig(normalization="zscore")
    assert PreprocessConfig.from_dict(cfg.to_dict()) == cfg
    assert "normalization" not in PreprocessConfig().to_dict()  # older caches and packages unchanged
    assert PreprocessConfig.from_dict({"percentile": 99.9, "crop_margin": 2}).normalization == "percentile"
    with pytest.raises(ValueError, match="normalization"):
        PreprocessConfig(normalization="minmax")

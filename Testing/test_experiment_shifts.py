"""Pipeline shifts of the model protocol: anatomy kept, intensities or storage changed."""

import numpy as np
from voxmmsd.experiment.shifts import bias_shift, to_uint8, zscore_whole


def _vol():
    a = np.zeros((20, 24, 22), np.int16)
    a[4:16, 5:19, 4:18] = 400
    a[8:12, 10:14, 9:13] = 900
    return a


def test_zscore_whole_has_a_negative_background_and_unit_spread():
    z = zscore_whole(_vol())
    assert z.dtype == np.float32 and abs(float(z.mean())) < 1e-5 and abs(float(z.std()) - 1) < 1e-4
    assert z[0, 0, 0] < 0 and (z[0] == z[0, 0, 0]).all()
    assert (np.argsort(z.ravel(), kind="stable") == np.argsort(_vol().ravel(), kind="stable")).all()


def test_uint8_keeps_the_order_and_the_range():
    u = to_uint8(_vol())
    assert u.dtype == np.uint8 and u.min() == 0 and u.max() == 255
    assert u[10, 12, 11] > u[5, 6, 5] > u[0, 0, 0]
    assert not to_uint8(np.ones((3, 3, 3))).any()


def test_bias_is_smooth_multiplicative_and_seeded():
    v = _vol().astype(np.float32)
    a, b = bias_shift(v, np.random.default_rng(1)), bias_shift(v, np.random.default_rng(1))
    assert np.array_equal(a, b)
    assert not a[v == 0].any()  # background stays 0
    ratio = a[v > 0] / v[v > 0]
    assert 0.5 < ratio.min() < ratio.max() < 2.0 and ratio.std() > 0.01

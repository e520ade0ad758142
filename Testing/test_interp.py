"""voxmmsd.interp.zoom_linear against scipy.ndimage.zoom (order 1, edge-aligned, zero beyond the edge)."""

import numpy as np
import pytest
from scipy import ndimage
from voxmmsd.interp import axis_weights, zoom_linear
from voxmmsd.preprocessing import resize


def scipy_zoom(a: np.ndarray, shape) -> np.ndarray:
    def one(c):
        return ndimage.zoom(c, [s / o for s, o in zip(shape, c.shape)], order=1, grid_mode=True,
                            mode="grid-constant")

    return one(a) if a.ndim == 3 else np.stack([one(c) for c in a])


@pytest.mark.parametrize("src,dst", [
    ((4, 20, 23, 18), (40, 46, 35)),  # the 2 mm -> 1 mm restore of class scores
    ((3, 40, 46, 35), (20, 23, 18)),  # downsampling (preprocessing)
    ((2, 9, 14, 11), (17, 5, 11)),  # mixed: up, down, unchanged
    ((1, 4, 3), (1, 7, 2)),  # a singleton axis, 3-D input
])
def test_matches_scipy(src, dst):
    rng = np.random.default_rng(1)
    a = rng.standard_normal(src).astype(np.float32)
    got = zoom_linear(a, dst)
    ref = scipy_zoom(a, dst)
    assert got.shape == ref.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, ref, rtol=0, atol=2e-6)


def test_argmax_of_restored_scores_is_scipys():
    rng = np.random.default_rng(2)
    scores = rng.standard_normal((4, 16, 18, 15)).astype(np.float32) * 5
    a = np.argmax(zoom_linear(scores, (32, 36, 29)), axis=0)
    b = np.argmax(scipy_zoom(scores, (32, 36, 29)), axis=0)
    assert np.mean(a != b) < 1e-4  # only exact ties may differ


def test_weights_zero_beyond_the_edge():
    i0, i1, w0, w1 = axis_weights(2, 4)  # output centres at input -0.25, 0.25, 0.75, 1.25
    np.testing.assert_allclose(w0 + w1, [0.75, 1.0, 1.0, 0.75])
    assert i0.min() >= 0 and i1.max() <= 1


def test_resize_dispatch_keeps_values_and_dtype():
    rng = np.random.default_rng(3)
    a = rng.random((2, 10, 12, 8))
    assert resize(a, (10, 12, 8)) is a
    out = resize(a, (5, 6, 4))
    assert out.dtype == np.float64
    np.testing.assert_allclose(out, scipy_zoom(a, (5, 6, 4)), atol=1e-12)
    lab = rng.integers(0, 4, (10, 12, 8)).astype(np.uint8)
    np.testing.assert_array_equal(resize(lab, (20, 24, 16), order=0),
                                  ndimage.zoom(lab, 2, order=0, grid_mode=True, mode="grid-constant"))


def test_bad_shape():
    with pytest.raises(ValueError):
        zoom_linear(np.zeros((2, 3, 4)), (2, 3))

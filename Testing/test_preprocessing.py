"""Crop, scale, resample and restore."""

from __future__ import annotations

import numpy as np
import pytest
from voxmmsd.errors import InputError
from voxmmsd.preprocessing import PreprocessConfig, brain_box, prepare, prepare_label, restore, scale_percentile


def _image() -> np.ndarray:
    img = np.zeros((4, 30, 40, 50), np.float32)
    rng = np.random.default_rng(0)
    img[:, 5:20, 10:30, 12:40] = rng.uniform(10, 1000, (4, 15, 20, 28))
    return img


def test_brain_box_and_margin() -> None:
    assert brain_box(_image()) == ((5, 20), (10, 30), (12, 40))
    assert brain_box(_image(), margin=3) == ((2, 23), (7, 33), (9, 43))


def test_scaling_in_unit_range() -> None:
    img = _image()
    out = scale_percentile(img, 99.0)
    assert out.min() >= 0 and out.max() <= 1
    for c in range(4):
        inside = out[c][img[c] != 0]
        assert np.mean(inside >= 1.0) == pytest.approx(0.01, abs=0.005)


def test_prepare_restore_round_trip_on_native_grid() -> None:
    img = _image()
    prepared = prepare(img, (1.0, 1.0, 1.0), PreprocessConfig(crop_margin=1))
    assert prepared.image.shape == (4, 17, 22, 30)
    lab = np.zeros(img.shape[1:], np.uint8)
    lab[8:12, 15:20, 20:30] = 2
    small = prepare_label(lab, prepared)
    np.testing.assert_array_equal(restore(small, prepared), lab)


def test_prepare_with_target_spacing() -> None:
    img = _image()
    prepared = prepare(img, (1.0, 1.0, 2.0), PreprocessConfig(crop_margin=0, spacing=(2.0, 2.0, 2.0)))
    # x: 28 voxels at 1 mm -> 14; y: 20 -> 10; z: 15 at 2 mm stays 15
    assert prepared.image.shape == (4, 15, 10, 14)
    lab = np.zeros(img.shape[1:], np.uint8)
    lab[5:20, 10:30, 12:40] = 1
    back = restore(prepare_label(lab, prepared), prepared)
    assert back.shape == lab.shape
    assert (back == lab).mean() > 0.99


def test_all_zero_input() -> None:
    with pytest.raises(InputError, match="zero"):
        prepare(np.zeros((4, 5, 5, 5), np.float32), (1, 1, 1), PreprocessConfig())


def test_crop_does_not_change_the_scaling() -> None:
    """The network sees the same values whether the brain is cropped first or the whole volume is
    scaled (what the benchmark's comparison with the whole-volume MONAI baseline relies on)."""
    from voxmmsd.preprocessing import crop

    img = _image()
    cfg = PreprocessConfig(crop_margin=2)
    prepared = prepare(img, (1.0, 1.0, 1.0), cfg)
    whole = scale_percentile(img, cfg.percentile, np.any(img != 0, axis=0))
    np.testing.assert_array_equal(prepared.image, crop(whole, prepared.box))

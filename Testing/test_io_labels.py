"""Label conventions, conversions and regions."""

from __future__ import annotations

import numpy as np
import pytest
from voxmmsd.errors import LabelError
from voxmmsd.io.labels import (
    BRATS2023,
    LEGACY,
    detect_convention,
    from_internal,
    region_masks,
    to_internal,
    volumes_ml,
)


def test_legacy_round_trip() -> None:
    legacy = np.array([0, 1, 2, 4, 4, 1], dtype=np.uint8)
    internal = to_internal(legacy, LEGACY)
    np.testing.assert_array_equal(internal, [0, 1, 2, 3, 3, 1])
    np.testing.assert_array_equal(from_internal(internal, LEGACY), legacy)


def test_rc_has_no_legacy_value() -> None:
    internal = np.array([0, 1, 2, 3, 4], dtype=np.uint8)
    np.testing.assert_array_equal(from_internal(internal, LEGACY), [0, 1, 2, 4, 0])
    np.testing.assert_array_equal(from_internal(internal, BRATS2023), internal)


def test_values_outside_convention_are_refused() -> None:
    with pytest.raises(LabelError, match=r"\[3\].*legacy"):
        to_internal(np.array([0, 3], np.uint8), LEGACY)
    with pytest.raises(LabelError, match=r"\[7\]"):
        to_internal(np.array([0, 7], np.uint8), BRATS2023)


def test_regions_exclude_resection_cavity() -> None:
    lab = np.array([0, 1, 2, 3, 4], dtype=np.uint8)
    m = region_masks(lab, include_subregions=True)
    np.testing.assert_array_equal(m["WT"], [0, 1, 1, 1, 0])
    np.testing.assert_array_equal(m["TC"], [0, 1, 0, 1, 0])
    np.testing.assert_array_equal(m["ET"], [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(m["RC"], [0, 0, 0, 0, 1])


def test_detect_convention() -> None:
    assert detect_convention([0, 1, 2, 4]) == LEGACY
    assert detect_convention([0, 1, 2, 3]) == BRATS2023
    assert detect_convention([0, 1, 2, 3, 4]) == BRATS2023
    assert detect_convention([0, 9]) is None


def test_volumes() -> None:
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[:2] = 2
    lab[2:3] = 3
    v = volumes_ml(lab, 0.002)
    assert v["WT"] == pytest.approx(300 * 0.002)
    assert v["ET"] == pytest.approx(100 * 0.002)
    assert v["TC"] == pytest.approx(100 * 0.002)
    assert v["RC"] == 0.0

"""One canonical orientation: the same voxels, however a file stores its axes, give the same array."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.io.geometry import Geometry
from voxmmsd.io.orientation import same_voxels, to_canonical, turn_onto


def _image() -> sitk.Image:
    arr = np.random.default_rng(0).random((7, 9, 11)).astype(np.float32)  # (z, y, x): every axis different
    img = sitk.GetImageFromArray(arr)
    img.SetSpacing((1.0, 1.5, 2.0))
    img.SetOrigin((-10.0, 5.0, 3.0))
    return img


@pytest.mark.parametrize("code", ["RAS", "ASL", "SPR", "LPS"])
def test_any_storage_gives_the_same_canonical_array(code: str) -> None:
    img = _image()
    turned = sitk.DICOMOrient(img, code)
    a, ra = to_canonical(sitk.GetArrayFromImage(img), Geometry.of(img))
    b, rb = to_canonical(sitk.GetArrayFromImage(turned), Geometry.of(turned))
    assert np.array_equal(a, b) and ra.canonical.same_as(rb.canonical)
    assert np.array_equal(rb.undo(b), sitk.GetArrayFromImage(turned))  # and back, voxel for voxel
    assert same_voxels(Geometry.of(img), Geometry.of(turned))
    assert np.array_equal(turn_onto(sitk.GetArrayFromImage(turned), Geometry.of(turned), Geometry.of(img)),
                          sitk.GetArrayFromImage(img))


def test_other_voxels_are_not_the_same_grid() -> None:
    img = _image()
    shifted = sitk.Image(img)
    shifted.SetOrigin((-10.0, 5.0, 15.0))
    assert not same_voxels(Geometry.of(img), Geometry.of(shifted))
    tilted = sitk.Image(img)
    tilted.SetDirection(tuple(float(v) for v in synthetic.rotation(0, 10.0).ravel()))
    assert not same_voxels(Geometry.of(img), Geometry.of(tilted))

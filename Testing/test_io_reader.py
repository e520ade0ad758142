"""Reading a case onto one reference grid; geometry preserved exactly; bad input refused."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.errors import InputError
from voxmmsd.io.discovery import find_case
from voxmmsd.io.geometry import Geometry, orientation_code
from voxmmsd.io.reader import load_case, read_image
from voxmmsd.io.writer import write_label_nifti

RAS_DIRECTION = (-1.0, 0, 0, 0, -1.0, 0, 0, 0, 1.0)


@pytest.mark.parametrize("direction", [None, RAS_DIRECTION, tuple(synthetic.rotation(2, 30).ravel())])
@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.9, 1.1, 2.5)])
def test_label_written_with_input_geometry(tmp_path: Path, direction, spacing) -> None:
    geom = synthetic.default_geometry((40, 44, 24), spacing, direction)
    written = synthetic.write_case(tmp_path / "c", "g", seed=3, geometry=geom)
    case = load_case(find_case(tmp_path / "c"))
    out = write_label_nifti(case.label, case.geometry, tmp_path / "out" / "seg.nii.gz")
    ref = sitk.ReadImage(str(written["t1c"]))
    got = sitk.ReadImage(str(out))
    assert got.GetSize() == ref.GetSize()
    np.testing.assert_allclose(got.GetSpacing(), ref.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(got.GetOrigin(), ref.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(got.GetDirection(), ref.GetDirection(), atol=1e-6)
    expected = sitk.GetArrayFromImage(sitk.ReadImage(str(written["label"])))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(got), expected)


def test_ras_and_lps_files_give_same_anatomy(tmp_path: Path) -> None:
    lps = synthetic.default_geometry((40, 44, 24))
    ras = synthetic.default_geometry((40, 44, 24), direction=RAS_DIRECTION)
    assert orientation_code(lps.direction) == "LPS" and orientation_code(ras.direction) == "RAS"
    synthetic.write_case(tmp_path / "a", "a", seed=5, geometry=lps, noise=0)
    synthetic.write_case(tmp_path / "b", "b", seed=5, geometry=ras, noise=0)
    a = load_case(find_case(tmp_path / "a"))
    b = load_case(find_case(tmp_path / "b"))
    # the RAS grid flips the first two voxel axes: the same anatomy, mirrored arrays
    np.testing.assert_array_equal(a.label, b.label[:, ::-1, ::-1])


def test_per_sequence_grid_resampled_with_known_shift_and_rotation(tmp_path: Path) -> None:
    ref = synthetic.default_geometry((48, 56, 40))
    rotated = synthetic.default_geometry((44, 52, 34), (1.1, 1.05, 1.3), synthetic.rotation(2, 25).ravel())
    shifted = Geometry(ref.size, ref.spacing, tuple(o + s for o, s in zip(ref.origin, (3.0, -2.0, 1.0))),
                       ref.direction)
    synthetic.write_case(tmp_path / "c", "r", seed=2, geometry=ref, grids={"t2w": rotated, "t2f": shifted},
                         noise=0)
    case = load_case(find_case(tmp_path / "c"))
    assert set(case.resampled) == {"t2w", "t2f"}
    phantom = synthetic.random_phantom(2)
    inside = synthetic.sample_label(phantom, ref) >= 0  # all voxels
    for seq in ("t2w", "t2f"):
        expected = synthetic.sample_sequence(phantom, ref, seq, seed=2, noise=0).astype(np.float32)
        got = case.channel(seq)
        brain = expected > 0
        err = np.abs(got - expected)[brain & inside]
        # interpolation blurs edges only: the bulk agrees exactly, and no misalignment shows up
        assert np.median(err) < 1.0
        assert (err < 0.15 * 1000).mean() > 0.85
        # a 2 mm misregistration would break this: compare with a deliberately shifted expectation
        wrong = np.roll(expected, 2, axis=2)
        assert np.abs(got - wrong)[brain].mean() > 2 * err.mean()


def test_label_on_other_grid_is_nearest_neighbour(tmp_path: Path) -> None:
    ref = synthetic.default_geometry((48, 56, 40))
    fine = synthetic.default_geometry((96, 112, 80), (0.5, 0.5, 0.5))
    written = synthetic.write_case(tmp_path / "c", "n", seed=4, geometry=ref, grids={"t1c": fine})
    # label was written on the t1c grid (fine); make t1n the reference
    case = load_case(find_case(tmp_path / "c"), reference="t1n")
    assert case.label is not None and set(np.unique(case.label)) <= {0, 1, 2, 3}
    assert "label" in case.resampled
    assert written["label"].exists()


def _write(path: Path, array: np.ndarray, geom: Geometry) -> Path:
    sitk.WriteImage(geom.apply(sitk.GetImageFromArray(array)), str(path))
    return path


def test_unreadable_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken_t1c.nii.gz"
    bad.write_bytes(b"this is not an image")
    with pytest.raises(InputError, match=r"Cannot read .*broken_t1c\.nii\.gz"):
        read_image(bad, "T1c")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.nii.gz")


def test_two_dimensional_image(tmp_path: Path) -> None:
    p = tmp_path / "flat.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((20, 20), np.float32)), str(p))
    with pytest.raises(InputError, match=r"2-D.*3-D scalar volume"):
        read_image(p)


def test_four_dimensional_image(tmp_path: Path) -> None:
    p = tmp_path / "series.nii.gz"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((3, 8, 8, 8), np.float32), isVector=False), str(p))
    with pytest.raises(InputError, match="4-D"):
        read_image(p)


def test_nan_values(tmp_path: Path) -> None:
    arr = np.ones((8, 8, 8), np.float32)
    arr[2, 3, 4] = np.nan
    # MetaImage keeps NaN (ITK's NIfTI I/O does not round-trip it)
    p = _write(tmp_path / "nan_t1c.mha", arr, synthetic.default_geometry((8, 8, 8)))
    with pytest.raises(InputError, match=r"nan_t1c\.mha holds 1 NaN"):
        read_image(p)


def test_empty_image(tmp_path: Path) -> None:
    p = _write(tmp_path / "zero.nii.gz", np.zeros((8, 8, 8), np.int16), synthetic.default_geometry((8, 8, 8)))
    with pytest.raises(InputError, match="empty"):
        read_image(p)


def test_non_overlapping_grids(tmp_path: Path) -> None:
    ref = synthetic.default_geometry((48, 56, 40))
    far = Geometry(ref.size, ref.spacing, (500.0, 500.0, 500.0), ref.direction)
    written = synthetic.write_case(tmp_path / "c", "far", seed=0, geometry=ref)
    _write(written["t2w"], sitk.GetArrayFromImage(sitk.ReadImage(str(written["t2w"]))), far)
    with pytest.raises(InputError, match=r"T2-weighted.*covers only 0%"):
        load_case(find_case(tmp_path / "c"))


def test_missing_sequence_allowed_only_when_asked(tmp_path: Path) -> None:
    written = synthetic.write_case(tmp_path / "c", "m", seed=0)
    written["t1n"].unlink()
    files = find_case(tmp_path / "c", require_all=False)
    with pytest.raises(InputError, match="T1 native"):
        load_case(files)
    case = load_case(files, allow_missing=("t1n",))
    assert case.sequences == ["t1c", "t2w", "t2f"] and case.image.shape[0] == 3

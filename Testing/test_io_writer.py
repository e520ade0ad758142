"""Label maps written as NIfTI and Slicer .seg.nrrd, atomically."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicerio
from voxmmsd import synthetic
from voxmmsd.io import atomic
from voxmmsd.io.geometry import Geometry
from voxmmsd.io.labels import LABEL_TABLE
from voxmmsd.io.writer import write_label_nifti, write_seg_nrrd


def _geom() -> Geometry:
    return synthetic.default_geometry((20, 24, 12), (0.8, 1.2, 3.0), synthetic.rotation(1, 20).ravel())


def _label(geom: Geometry) -> np.ndarray:
    lab = np.zeros(geom.shape, np.uint8)
    lab[3:6, 4:10, 5:9] = 2
    lab[4, 6:8, 6:8] = 3
    lab[5, 6, 6] = 1
    return lab


def test_seg_nrrd_geometry_names_colors_terminology(tmp_path: Path) -> None:
    geom = _geom()
    lab = _label(geom)
    path = write_seg_nrrd(lab, geom, tmp_path / "out.seg.nrrd")
    seg = slicerio.read_segmentation(str(path))
    np.testing.assert_allclose(seg["ijkToLPS"], geom.ijk_to_lps(), atol=1e-5)
    voxels = seg["voxels"]
    np.testing.assert_array_equal(voxels.transpose(2, 1, 0), lab)
    by_name = {s["name"]: s for s in seg["segments"]}
    for info in LABEL_TABLE:
        s = by_name[info.name]
        assert s["labelValue"] == info.value
        np.testing.assert_allclose(s["color"], info.color, atol=1e-4)
        assert s["terminology"]["type"][1] == info.type[1]


def test_nifti_label_geometry(tmp_path: Path) -> None:
    geom = _geom()
    path = write_label_nifti(_label(geom), geom, tmp_path / "sub" / "seg.nii.gz")
    img = sitk.ReadImage(str(path))
    assert Geometry.of(img).same_as(geom, tol=1e-5)
    assert img.GetPixelID() == sitk.sitkUInt8


def test_failed_write_leaves_old_file_and_no_temp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    geom = _geom()
    target = tmp_path / "seg.nii.gz"
    write_label_nifti(_label(geom), geom, target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(sitk, "WriteImage", boom)
    with pytest.raises(RuntimeError):
        write_label_nifti(np.zeros(geom.shape, np.uint8), geom, target)
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["seg.nii.gz"]


def test_shape_mismatch_refused(tmp_path: Path) -> None:
    geom = _geom()
    with pytest.raises(ValueError, match="does not match"):
        write_label_nifti(np.zeros((2, 2, 2), np.uint8), geom, tmp_path / "x.nii.gz")
    assert not list(tmp_path.iterdir())


def test_unwritable_folder(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        pytest.skip("root can write anywhere")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(Exception, match="No permission"):
        atomic.write_text(ro / "a.txt", "x")

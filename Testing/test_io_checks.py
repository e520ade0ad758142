"""Input plausibility checks (voxmmsd.io.checks) on the formats and values they read themselves."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.errors import InputError
from voxmmsd.io.checks import background_value, check_mri, looks_skull_stripped
from voxmmsd.io.filecheck import check_file_complete

GEOM = synthetic.default_geometry((32, 40, 28))


def _phantom(seq: str = "t1c") -> np.ndarray:
    return synthetic.sample_sequence(synthetic.Phantom(), GEOM, seq)


@pytest.mark.parametrize("name", ["t1c.nrrd", "t1c.mha", "t1c.nii", "t1c.nii.gz"])
def test_complete_files_pass_and_cut_files_are_refused(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    sitk.WriteImage(GEOM.apply(sitk.GetImageFromArray(_phantom())), str(p), name.endswith(".gz"))
    check_file_complete(p)  # complete: no error
    p.write_bytes(p.read_bytes()[:-2000])
    with pytest.raises(InputError, match=rf"{name}.*(truncated|end marker)"):
        check_file_complete(p)


@pytest.mark.parametrize("name", ["t1c.nrrd", "t1c.mha"])
def test_compressed_nrrd_and_metaimage_cut_streams(tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    sitk.WriteImage(GEOM.apply(sitk.GetImageFromArray(_phantom())), str(p), True)
    check_file_complete(p)
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])
    with pytest.raises(InputError, match="truncated"):
        check_file_complete(p)


def test_big_endian_nifti_is_read_right(tmp_path: Path) -> None:
    """The header parser handles both byte orders (a wrong one would call every file truncated)."""
    p = tmp_path / "be.nii"
    sitk.WriteImage(sitk.GetImageFromArray(np.ones((12, 12, 12), np.float32)), str(p))
    raw = bytearray(p.read_bytes())
    import struct

    fields = struct.unpack("<i8h", bytes(raw[:4]) + bytes(raw[40:56]))
    raw[:4] = struct.pack(">i", fields[0])
    raw[40:56] = struct.pack(">8h", *fields[1:])
    for off, fmt in ((70, "h"), (72, "h"), (108, "f")):
        value = struct.unpack("<" + fmt, bytes(raw[off:off + struct.calcsize(fmt)]))[0]
        raw[off:off + struct.calcsize(fmt)] = struct.pack(">" + fmt, value)
    data = np.frombuffer(bytes(raw[352:]), "<f4").astype(">f4")
    data[5] = np.nan
    p.write_bytes(bytes(raw[:352]) + data.tobytes())
    with pytest.raises(InputError, match="1 NaN"):
        check_file_complete(p)


def test_background_value_prefers_zero() -> None:
    arr = _phantom().astype(np.float32)
    assert background_value(arr)[0] == 0.0
    assert background_value(arr - 500)[0] == -500.0
    zscored = np.where(arr > 0, (arr - 600) / 100, 0).astype(np.float32)  # negative brain, zero background
    assert background_value(zscored)[0] == 0.0
    assert check_mri(zscored, GEOM.spacing, Path("z.nii.gz")) is not None  # not refused


def test_check_mri_warns_on_small_brains_only() -> None:
    small = check_mri(_phantom(), GEOM.spacing, Path("t1c.nii.gz"), "T1c")
    assert len(small) == 1 and "outside the usual" in small[0] and "t1c.nii.gz" in small[0]
    spacing = (3.0, 3.0, 3.0)  # 27 x the volume: about 700 mL, a plausible brain
    assert check_mri(_phantom(), spacing, Path("t1c.nii.gz")) == []


def test_looks_skull_stripped_measures() -> None:
    r = looks_skull_stripped(_phantom(), GEOM.spacing)
    assert r.stripped and r.reason == "" and 0.1 < r.background_fraction < 0.9
    assert abs(r.foreground_ml - (np.count_nonzero(_phantom()) / 1000.0)) < 1e-6
    noisy = _phantom().astype(np.float32) + np.random.default_rng(1).uniform(1, 9, GEOM.shape).astype(np.float32)
    air = looks_skull_stripped(noisy, GEOM.spacing)
    assert not air.stripped and "background" in air.reason and air.background_fraction < 0.01
    huge = looks_skull_stripped(_phantom(), (5.0, 5.0, 5.0))  # the same voxels as a 3.8 L "brain"
    assert not huge.stripped and "larger than a brain" in huge.reason

"""Faults of the input images: plausibility before any compute, orientation and grids, the file-open check.
Registered in :data:`support.reliability.FAULTS` on import."""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
from pathlib import Path
from typing import Sequence

import numpy as np
import SimpleITK as sitk
from voxmmsd import synthetic
from voxmmsd.cli.main import main
from voxmmsd.errors import InputError

from support.reliability import GEOM, Env, _labelled, _raw_nifti_with, _read, _sha_of_tree, _tolerant, fault

# -- 1. input plausibility, before any compute ------------------------------------------------------

@fault("input", "refused")
def truncated_nii_gz(env: Env) -> None:
    p = env.seq("t1c")
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    env.refused(env.segment(), "c-t1c.nii.gz", "truncated")
    assert not (env.tmp / "out").exists()


@fault("input", "refused")
def truncated_uncompressed_nii(env: Env) -> None:
    img = env.image("t2w")
    p = env.case / "c-t2w.nii"
    sitk.WriteImage(img, str(p))
    env.seq("t2w").unlink()
    p.write_bytes(p.read_bytes()[:-5000])
    env.refused(env.segment(), "c-t2w.nii", "truncated", "header describes")


@fault("input", "refused")
def truncated_file_in_training_data(env: Env) -> None:
    from voxmmsd.data.cache import build_cache
    from voxmmsd.io.discovery import find_dataset
    from voxmmsd.preprocessing import PreprocessConfig

    data = synthetic.write_dataset(env.tmp / "train", n=2, geometry=GEOM)
    p = data / "case001" / "case001-t2f.nii.gz"
    p.write_bytes(p.read_bytes()[: p.stat().st_size * 2 // 3])
    with env.raises(InputError, r"case001-t2f\.nii\.gz.*(truncated|end marker)"):
        build_cache(find_dataset(data), env.tmp / "cache", PreprocessConfig(), show_progress=False)


@fault("input", "refused")
def damaged_gzip_stream(env: Env) -> None:
    p = env.seq("t2f")
    data = bytearray(p.read_bytes())
    for i in range(len(data) // 2, len(data) // 2 + 64):
        data[i] ^= 0x5A
    p.write_bytes(bytes(data))
    env.refused(env.segment(), "c-t2f.nii.gz")


@fault("input", "refused")
def nan_in_raw_nifti(env: Env) -> None:
    _raw_nifti_with(env, float("nan"))
    env.refused(env.segment(), "c-t1c.nii.gz", "NaN or infinite", "raw data")


@fault("input", "refused")
def inf_in_raw_nifti(env: Env) -> None:
    _raw_nifti_with(env, float("inf"))
    env.refused(env.segment(), "c-t1c.nii.gz", "NaN or infinite")


@fault("input", "refused")
def constant_image(env: Env) -> None:
    img = env.image("t1n")
    env.write("t1n", np.full(sitk.GetArrayFromImage(img).shape, 100, np.int16), img)
    env.refused(env.segment(), "c-t1n.nii.gz", "constant")


@fault("input", "refused")
def near_constant_image_a_mask(env: Env) -> None:
    img = env.image("t2w")
    env.write("t2w", (sitk.GetArrayFromImage(img) > 0).astype(np.int16), img)
    env.refused(env.segment(), "c-t2w.nii.gz", "nearly constant")


@fault("input", "warned")
def nonzero_background(env: Env) -> None:
    img = env.image("t1n")
    env.write("t1n", sitk.GetArrayFromImage(img).astype(np.int16) - 500, img)
    assert env.segment() == 0  # shifted back to a background of 0, as a z-scored image from another pipeline
    report = json.loads((env.tmp / "out" / "report.json").read_text())
    env.warned(json.dumps(report["warnings"]), "c-t1n.nii.gz", "background was -500", "shifted")


@fault("input", "refused")
def same_file_for_all_four_sequences(env: Env) -> None:
    t1c = str(env.seq("t1c"))
    env.refused(env.segment("--t1n", t1c, "--t1c", t1c, "--t2w", t1c, "--t2f", t1c), "same file")


@fault("input", "refused")
def identical_copy_for_two_sequences(env: Env) -> None:
    shutil.copyfile(env.seq("t1c"), env.seq("t2w"))
    env.refused(env.segment(), "identical", "c-t2w.nii.gz")


@fault("input", "refused")
def identical_voxels_other_file(env: Env) -> None:
    img = env.image("t1c")
    env.seq("t2f").unlink()
    sitk.WriteImage(img, str(env.case / "c-t2f.nrrd"))  # same voxels, another format
    env.refused(env.segment(), "identical voxels", "c-t2f.nrrd")


@fault("input", "refused")
def spacing_10mm_in_header(env: Env) -> None:
    for key in ("t1n", "t1c", "t2w", "t2f"):
        img = env.image(key)
        img.SetSpacing((10.0, 10.0, 10.0))
        sitk.WriteImage(img, str(env.seq(key)), True)
    env.refused(env.segment(), "spacing", "header")


@fault("input", "refused")
def impossible_brain_volume(env: Env) -> None:
    for key in ("t1n", "t1c", "t2w", "t2f"):
        img = env.image(key)
        img.SetSpacing((8.0, 8.0, 8.0))  # each spacing allowed, but a 15 L "brain"
        sitk.WriteImage(img, str(env.seq(key)), True)
    env.refused(env.segment(), "mL", "impossible for a head")


@fault("input", "refused")
def tiny_8_cubed_image(env: Env) -> None:
    folder = env.tmp / "tiny"
    g = synthetic.default_geometry((8, 8, 8))
    synthetic.write_case(folder, "tiny", seed=1, geometry=g, with_label=False,
                         phantom=synthetic.Phantom(brain_radii=(3, 3, 3)))
    env.refused(env.segment(case=folder), "(8, 8, 8)", "too small")


@fault("input", "warned")
def unusual_brain_volume_warns(env: Env) -> None:
    assert env.segment() == 0  # the synthetic brain is 36 mL: plausible shape, implausible size
    report = json.loads((env.tmp / "out" / "report.json").read_text())
    env.warned(json.dumps(report["warnings"]), "mL, outside the usual", "voxel spacing")


@fault("input", "warned")
def head_not_skull_stripped_detected(env: Env) -> None:
    from scipy import ndimage
    from voxmmsd.io.checks import looks_skull_stripped

    img = env.image("t1c")
    arr = sitk.GetArrayFromImage(img).astype(np.float32)
    brain = arr > 0
    skull = ndimage.binary_dilation(brain, iterations=4) & ~brain
    scalp = ndimage.binary_dilation(brain, iterations=7) & ~brain & ~skull
    head = arr.copy()
    head[skull], head[scalp] = 20.0, 700.0  # dark bone between bright scalp and brain, air masked
    assert looks_skull_stripped(arr, img.GetSpacing()).stripped
    masked = looks_skull_stripped(head, img.GetSpacing())
    assert not masked.stripped and "skull" in masked.reason
    noisy = head + np.abs(np.random.default_rng(0).normal(0, 8, head.shape)).astype(np.float32)
    scanner = looks_skull_stripped(noisy, img.GetSpacing())
    assert not scanner.stripped
    env.warned(masked.reason + " " + scanner.reason, "skull", "background")


@fault("input", "refused")
def empty_case_folder(env: Env) -> None:
    (env.tmp / "empty").mkdir()
    rc = main(["segment", str(env.tmp / "empty"), "--out", str(env.tmp / "out"), "--model", str(_tolerant(env)),
               "--backend", "onnx", "--progress", "none"])  # a model that tolerates missing sequences
    env.refused(rc, "empty", "has no")


@fault("input", "refused")
def two_flairs_in_one_case(env: Env) -> None:
    shutil.copyfile(env.seq("t2f"), env.case / "c_flair.nii.gz")
    env.refused(env.segment(), "More than one T2-FLAIR")


@fault("input", "refused")
def input_error_before_the_model_loads(env: Env) -> None:
    import voxmmsd.infer.predictor as predictor

    def no_backend(*a, **k):
        raise AssertionError("the model was loaded before the images were checked")

    env.monkeypatch.setattr(predictor, "create_backend", no_backend)
    p = env.seq("t2w")
    p.write_bytes(p.read_bytes()[:-300])
    env.refused(env.segment(), "c-t2w.nii.gz")


# -- 4. orientation and grids: the same image gives the same answer ----------------------------------


def _stored_as(env: Env, code: str) -> Path:
    """The case's four sequences stored with axes ``code`` (SimpleITK's DICOMOrient: axes permuted and flipped,
    no voxel changed): the same physical image, another file layout."""
    folder = env.tmp / f"c-{code}"
    folder.mkdir()
    for key in synthetic.SEQUENCES:
        sitk.WriteImage(sitk.DICOMOrient(env.image(key), code), str(folder / f"c-{key}.nii.gz"), True)
    return folder


def _same_as_stored(env: Env, code: str) -> None:
    assert env.segment() == 0
    turned = _stored_as(env, code)
    assert env.segment(case=turned, out=env.tmp / f"out-{code}") == 0
    seg = sitk.ReadImage(str(env.tmp / f"out-{code}" / "segmentation.nii.gz"))
    ref = sitk.ReadImage(str(turned / "c-t1c.nii.gz"))
    assert seg.GetDirection() == ref.GetDirection() and seg.GetOrigin() == ref.GetOrigin()  # on the stored grid
    original = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(env.image("t1c").GetDirection())
    back = sitk.GetArrayFromImage(sitk.DICOMOrient(seg, original))  # SimpleITK turns it back, not the tool
    env.same(_read(env.tmp / "out" / "segmentation.nii.gz"), back)


@fault("orientation", "same")
def same_image_stored_ras(env: Env) -> None:
    _same_as_stored(env, "RAS")


@fault("orientation", "same")
def same_image_axes_permuted(env: Env) -> None:
    _same_as_stored(env, "ASL")


@fault("orientation", "same")
def oblique_header_identical_voxels(env: Env) -> None:
    assert env.segment() == 0
    folder = env.tmp / "oblique"
    folder.mkdir()
    tilt = synthetic.rotation(0, 10.0) @ synthetic.rotation(2, 4.0)
    for key in synthetic.SEQUENCES:  # the same voxels, one oblique header on all four
        img = env.image(key)
        img.SetDirection(tuple(float(v) for v in tilt.ravel()))
        sitk.WriteImage(img, str(folder / f"c-{key}.nii.gz"), True)
    assert env.segment(case=folder, out=env.tmp / "out-oblique") == 0
    report = json.loads((env.tmp / "out-oblique" / "report.json").read_text())
    assert report["inputs"]["resampled"] == {}  # on the reference grid: nothing resampled
    env.same(_read(env.tmp / "out" / "segmentation.nii.gz"), _read(env.tmp / "out-oblique" / "segmentation.nii.gz"))


@fault("orientation", "same")
def one_sequence_stored_ras(env: Env) -> None:
    from voxmmsd.io.discovery import find_case
    from voxmmsd.io.reader import load_case

    before = load_case(find_case(env.case), with_label=False)
    t2w = env.seq("t2w")
    sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(t2w)), "RAS"), str(t2w), True)  # the same voxels, RAS
    after = load_case(find_case(env.case), with_label=False)
    assert after.resampled == {}  # turned onto the reference grid, not interpolated
    env.same(before.image, after.image)


@fault("training", "same")
def training_label_stored_ras(env: Env) -> None:
    from voxmmsd.io.discovery import find_case
    from voxmmsd.io.reader import load_case

    case = _labelled(env, n=1) / "case000"
    before = load_case(find_case(case))
    p = case / "case000-seg.nii.gz"
    sitk.WriteImage(sitk.DICOMOrient(sitk.ReadImage(str(p)), "RAS"), str(p), True)  # drawn on the image, saved RAS
    after = load_case(find_case(case))
    assert after.resampled == {} and before.label is not None and after.label is not None
    env.same(before.label, after.label)


# -- 5. input files: the one file-open check ---------------------------------------------------------

@fault("input", "refused")
def unreadable_file(env: Env) -> None:
    p = env.seq("t2w")
    if hasattr(os, "geteuid") and os.geteuid() != 0:
        p.chmod(0)
        try:
            rc = env.segment()
        finally:
            p.chmod(0o644)
    else:  # root may read every file: a test double for the permission the kernel would refuse (only os.open
        import voxmmsd.io.access as access  # of that one file; the check and everything after it are real)

        real_open = os.open

        def denied(path, flags, *a, **k):
            if str(path) == str(p):
                raise PermissionError(errno.EACCES, "Permission denied", str(path))
            return real_open(path, flags, *a, **k)

        env.monkeypatch.setattr(access.os, "open", denied)
        rc = env.segment()
    env.refused(rc, "c-t2w.nii.gz", "permission denied", "chmod")
    assert not (env.tmp / "out").exists()


@fault("input", "refused")
def dangling_symlink_for_flair(env: Env) -> None:
    p = env.seq("t2f")
    p.unlink()
    p.symlink_to(env.tmp / "gone" / "flair.nii.gz")
    rc = main(["segment", str(env.case), "--out", str(env.tmp / "out"), "--model", str(_tolerant(env)),
               "--backend", "onnx", "--progress", "none"])  # a model that would segment without FLAIR
    env.refused(rc, "c-t2f.nii.gz", "broken link")
    assert not (env.tmp / "out").exists()


def _write_nifti2(path: Path, array: np.ndarray, spacing: Sequence[float]) -> None:
    """A NIfTI-2 file (540-byte header, int64 dimensions), written byte by byte."""
    import struct

    head = bytearray(544)
    struct.pack_into("<i8s", head, 0, 540, b"n+2\0\r\n\x1a\n")
    struct.pack_into("<hh", head, 12, 16, 32)  # float32
    nz, ny, nx = array.shape
    struct.pack_into("<8q", head, 16, 3, nx, ny, nz, 1, 1, 1, 1)
    struct.pack_into("<8d", head, 104, 1.0, *spacing, 0.0, 0.0, 0.0, 0.0)
    struct.pack_into("<qdd", head, 168, 544, 1.0, 0.0)
    struct.pack_into("<ii", head, 344, 0, 1)
    struct.pack_into("<4d4d4d", head, 400, spacing[0], 0, 0, 0, 0, spacing[1], 0, 0, 0, 0, spacing[2], 0)
    path.write_bytes(gzip.compress(bytes(head) + np.ascontiguousarray(array, "<f4").tobytes()))


@fault("input", "refused")
def nifti2_file(env: Env) -> None:
    img = env.image("t1n")
    _write_nifti2(env.seq("t1n"), sitk.GetArrayFromImage(img).astype(np.float32), img.GetSpacing())
    env.refused(env.segment(), "c-t1n.nii.gz", "NIfTI-2", "NIfTI-1")


@fault("outputs", "refused")
def out_is_the_case_folder(env: Env) -> None:
    before = _sha_of_tree(env.case)
    env.refused(env.segment(out=env.case), "is the case folder itself", "Choose another folder")
    assert _sha_of_tree(env.case) == before and not (env.case / ".voxmmsd.lock").exists()


@fault("outputs", "kept")
def users_own_segmentation_kept(env: Env) -> None:
    out = env.tmp / "out"
    out.mkdir()
    mine = b"the user's own segmentation, no report.json beside it"
    (out / "segmentation.nii.gz").write_bytes(mine)
    env.refused(env.segment(), "segmentation.nii.gz", "did not write", "--overwrite")
    env.kept(mine, (out / "segmentation.nii.gz").read_bytes())
    assert env.segment("--overwrite") == 0 and (out / "report.json").is_file()  # replaced only when asked


@fault("outputs", "ignored")
def result_in_the_case_folder_not_read_as_input(env: Env) -> None:
    from voxmmsd.io.discovery import find_case

    assert env.segment() == 0
    for p in (env.tmp / "out").iterdir():  # a result beside the images (e.g. copied there)
        shutil.copyfile(p, env.case / p.name)
    case = find_case(env.case)
    env.ignored(case.label is None and sorted(p.name for p in case.sequences.values()) == [
        "c-t1c.nii.gz", "c-t1n.nii.gz", "c-t2f.nii.gz", "c-t2w.nii.gz"], "the tool's own files were taken as input")
    assert env.segment(out=env.tmp / "again") == 0



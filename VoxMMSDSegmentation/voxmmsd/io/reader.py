"""Read and validate images, and load a case onto one reference grid."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import SimpleITK as sitk

from voxmmsd.errors import InputError
from voxmmsd.io.access import check_openable
from voxmmsd.io.checks import check_distinct, check_distinct_arrays, check_file_complete, check_mri, nifti_version
from voxmmsd.io.discovery import SEQUENCE_NAMES, SEQUENCES, CaseFiles, missing_error
from voxmmsd.io.geometry import Geometry, check_overlap, resample_to
from voxmmsd.io.orientation import same_voxels, turn_onto
from voxmmsd.io.parallel import map_ordered

log = logging.getLogger(__name__)


@dataclass
class Case:
    """A case on its reference grid.

    ``image`` is float32 ``(C, z, y, x)`` with one channel per entry of ``sequences``
    (missing sequences are absent, not zero-filled); ``label`` is uint8 ``(z, y, x)``
    as stored in the file (convert with :mod:`voxmmsd.io.labels`).
    """

    case_id: str
    image: np.ndarray
    sequences: List[str]
    geometry: Geometry
    reference: str
    label: Optional[np.ndarray] = None
    files: Optional[CaseFiles] = None
    resampled: Dict[str, str] = field(default_factory=dict)  # sequence -> why it was resampled
    warnings: List[str] = field(default_factory=list)
    #: structured warnings ``{"kind", "message"}`` (their messages are also in ``warnings``)
    alerts: List[Dict[str, str]] = field(default_factory=list)
    #: uint8 (z, y, x) brain mask from brain extraction (voxmmsd.infer.exam), applied to ``image``; None if none ran
    brain_mask: Optional[np.ndarray] = None
    #: how the exam was brought onto the grid (registration, brain extraction), for report.json
    preparation: Dict[str, Any] = field(default_factory=dict)
    #: RGB uint8 picture of the registration / brain mask (voxmmsd.infer.exam_qc), or None
    exam_picture: Optional[np.ndarray] = None

    def channel(self, sequence: str) -> np.ndarray:
        return self.image[self.sequences.index(sequence)]


def read_image(path: Path, what: str = "image") -> sitk.Image:
    """Read one 3-D image (a file, or a folder holding a DICOM series) with checks.

    Raises :class:`InputError` naming ``path`` if the file is missing, a broken link, not readable (permission,
    not a regular file: :func:`voxmmsd.io.access.check_openable`), a NIfTI-2 file, unreadable, truncated
    (shorter than its header says, or a cut gzip stream), not 3-D, empty, or holds NaN/inf
    (checked on the raw data: ITK's NIfTI reader would turn them into 0).
    """
    path = check_openable(path, what, folder=True)  # broken link, no permission, a pipe: refused here
    check_file_complete(path, what)
    try:
        if path.is_dir():
            reader = sitk.ImageSeriesReader()
            ids = reader.GetGDCMSeriesIDs(str(path))
            if not ids:
                raise InputError(f"{what}: no DICOM series in folder {path}. Give an image file or a DICOM folder.")
            if len(ids) > 1:
                raise InputError(f"{what}: {len(ids)} DICOM series in {path}; put each series in its own folder.")
            reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(path), ids[0]))
            image = reader.Execute()
        else:
            image = sitk.ReadImage(str(path))
    except RuntimeError as exc:
        if nifti_version(path) == 2:
            raise InputError(f"{what} {path} is a NIfTI-2 file, which the image reader (SimpleITK/ITK) does not "
                             f"support. Save it as NIfTI-1 (.nii.gz): in 3D Slicer load it and save it again, or "
                             f"with nibabel: nib.save(nib.Nifti1Image(img.get_fdata(), img.affine), "
                             f"'out.nii.gz').") from None
        first = str(exc).strip().splitlines()[-1] if str(exc).strip() else "unknown error"
        raise InputError(
            f"Cannot read {what} {path}: {first}. Is it a NIfTI, NRRD, MHA or DICOM image, "
            f"and is the file complete?"
        ) from None
    return check_image(image, path, what)


def check_image(image: sitk.Image, path: Path, what: str = "image") -> sitk.Image:
    """Validate dimensionality, emptiness and finiteness; squeeze a trailing singleton 4th axis."""
    if image.GetDimension() == 4 and image.GetSize()[3] == 1:
        image = image[:, :, :, 0]
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(
            f"{what} {path} is {image.GetDimension()}-D with {image.GetNumberOfComponentsPerPixel()} "
            f"component(s) per voxel (size {image.GetSize()}); a single 3-D scalar volume is needed. "
            f"Split 4-D series or select one volume."
        )
    if min(image.GetSize()) < 2:
        raise InputError(f"{what} {path} has size {image.GetSize()}: not a 3-D volume.")
    arr = sitk.GetArrayViewFromImage(image)
    if arr.dtype.kind == "f" and not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise InputError(f"{what} {path} holds {bad} NaN or infinite voxel(s). Fix or re-export the image.")
    if what != "label map" and not np.any(arr):
        raise InputError(f"{what} {path} is empty (every voxel is 0). Check that the right file was given.")
    return image


def read_sequence(path: Path, what: str) -> Tuple[sitk.Image, List[str]]:
    """:func:`read_image` plus the MRI plausibility checks of :func:`voxmmsd.io.checks.check_mri`
    (refusals raise; the warnings are returned). An image whose wide background sits at a value other
    than 0 (z-scored or offset intensities, as some pipelines store them) is shifted so that the
    background is 0, with a warning: every model takes the non-zero voxels for the brain."""
    image = read_image(path, what)
    warnings: List[str] = []
    image, shifted = shift_background(image)
    if shifted:
        warnings.append(f"{what} {path}: its background was {shifted:g}, not 0 (z-scored or offset intensities); "
                        f"the image was shifted by {-shifted:g} so that the background is 0.")
    warnings += check_mri(sitk.GetArrayViewFromImage(image), image.GetSpacing(), Path(path), what)
    return image, warnings


def read_sequences(paths: Mapping[str, Path], workers: Optional[int] = None) -> Dict[str, Tuple[sitk.Image, List[str]]]:
    """:func:`read_sequence` of every ``{sequence: path}``, decoded in parallel threads (the gzip stream
    and ITK's reader release the GIL); the same images, warnings and errors as reading them one after
    another in the mapping's order (the first failing sequence in that order raises)."""
    keys = list(paths)
    found = map_ordered(lambda k: read_sequence(Path(paths[k]), SEQUENCE_NAMES.get(k, k)), keys, workers,
                        name="voxmmsd-read")
    return dict(zip(keys, found))


def check_label_grid(files: CaseFiles, label: Geometry, grids: Dict[str, Geometry]) -> None:
    """Refuse a label map that is not on the grid of one of the case's images: a label is drawn on an image, so a
    label on no image's grid (shifted, another resolution, another case) would be resampled into a wrong one."""
    if any(same_voxels(label, g) for g in grids.values()):  # (stored in any axis order)
        return
    seq, g = next(iter(grids.items()))
    shift = float(np.linalg.norm(np.subtract(label.origin, g.origin)))
    raise InputError(f"label map {files.label} is not on the grid of any of the case's images (e.g. "
                     f"{SEQUENCE_NAMES[seq]}: {g.describe()}; the label: {label.describe()}; origins {shift:.1f} mm "
                     f"apart). A label must lie on the image it was drawn on: export it again on that image's grid, "
                     f"or check that it belongs to case {files.case_id!r}.")


def shift_background(image: sitk.Image) -> Tuple[sitk.Image, float]:
    """``image`` moved so that a wide background at a value other than 0 becomes 0 (float32), and the
    value it was at (0.0 when nothing was done)."""
    from voxmmsd.io.checks import NONZERO_BACKGROUND_FRACTION, background_value

    value, frac = background_value(sitk.GetArrayViewFromImage(image))
    if value == 0 or frac < NONZERO_BACKGROUND_FRACTION:
        return image, 0.0
    arr = sitk.GetArrayFromImage(image).astype(np.float32) - np.float32(value)
    out = sitk.GetImageFromArray(arr)
    out.CopyInformation(image)
    return out, float(value)


def load_case(files: CaseFiles, reference: str = "t1c", with_label: bool = True,
              allow_missing: Sequence[str] = ()) -> Case:
    """Read a case's sequences onto the reference sequence's grid.

    Sequences on another grid are resampled in physical space (linear); the label map, which must lie
    on the grid of one of the sequences (:func:`check_label_grid`), is resampled with nearest neighbour
    when that is not the reference's. A sequence or label holding the reference grid's voxels in another
    axis order or direction (stored RAS against LPS) is turned onto it voxel for voxel, never resampled.
    Sequences in ``allow_missing`` may be absent.
    Every sequence passes the plausibility checks of :mod:`voxmmsd.io.checks` on its own grid
    (refusals raise :class:`InputError`; warnings land in ``Case.warnings``), and no two
    sequences may be the same file or hold identical voxels. Nothing is written anywhere.
    """
    present = [s for s in SEQUENCES if s in files.sequences]
    if any(s not in set(allow_missing) for s in files.missing):
        raise missing_error(files, allow_missing)
    if not present:
        raise missing_error(files)
    check_distinct({s: files.sequences[s] for s in present}, SEQUENCE_NAMES)
    warnings: List[str] = []
    if reference not in files.sequences:
        fallback = present[0]
        log.warning("reference %s missing in case %s; using %s's grid", reference, files.case_id, fallback)
        reference = fallback
    order = [reference] + [s for s in present if s != reference]  # the reference's errors come first
    native = read_sequences({s: files.sequences[s] for s in order})
    for seq in order:
        warnings.extend(native[seq][1])
    ref_geom = Geometry.of(native[reference][0])
    # one float32 (C, z, y, x) block filled channel by channel: no per-channel copy, no stacking copy
    image = np.empty((len(present),) + tuple(ref_geom.shape), dtype=np.float32)
    resampled: Dict[str, str] = {}
    grids: Dict[str, Geometry] = {}
    for c, seq in enumerate(present):
        img = native[seq][0]
        geom = grids[seq] = Geometry.of(img)
        arr = sitk.GetArrayViewFromImage(img)
        if geom.same_as(ref_geom):
            pass
        elif same_voxels(geom, ref_geom):  # the reference's voxels stored in another axis order: turned, not resampled
            arr = turn_onto(arr, geom, ref_geom)
        else:
            check_overlap(f"{SEQUENCE_NAMES[seq]} ({files.sequences[seq]})", geom, ref_geom,
                          f"{SEQUENCE_NAMES[reference]} ({files.sequences[reference]})")
            resampled[seq] = f"{geom.describe()} -> {ref_geom.describe()}"
            arr = sitk.GetArrayFromImage(resample_to(img, ref_geom))
        image[c] = arr
    label = None
    if with_label and files.label is not None:
        limg = read_image(files.label, "label map")
        lgeom = Geometry.of(limg)
        check_label_grid(files, lgeom, grids)
        if lgeom.same_as(ref_geom):
            larr = sitk.GetArrayFromImage(limg)
        elif same_voxels(lgeom, ref_geom):  # the reference's grid stored in another axis order
            larr = turn_onto(sitk.GetArrayFromImage(limg), lgeom, ref_geom)
        else:
            check_overlap(f"label map ({files.label})", lgeom, ref_geom, SEQUENCE_NAMES[reference])
            resampled["label"] = f"{lgeom.describe()} -> {ref_geom.describe()}"
            larr = sitk.GetArrayFromImage(resample_to(limg, ref_geom, label=True))
        if larr.dtype.kind == "f" and not np.allclose(larr, np.round(larr)):
            raise InputError(f"label map {files.label} holds non-integer values; it must be a label map.")
        if larr.min() < 0 or larr.max() > 255:
            raise InputError(f"label map {files.label} holds values outside 0..255 "
                             f"({larr.min()}..{larr.max()}); it must be a tumour label map.")
        label = larr.astype(np.uint8)
    for seq, why in resampled.items():
        log.info("case %s: resampled %s: %s", files.case_id, seq, why)
    check_distinct_arrays(dict(zip(present, image)), files.sequences,
                          {s: SEQUENCE_NAMES[s] for s in present})
    return Case(files.case_id, image, present, ref_geom, reference, label, files, resampled,
                warnings)

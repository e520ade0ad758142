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
from voxmmsd.io.checks import check_distinct, check_distinct_arrays, check_mri
from voxmmsd.io.discovery import CaseFiles, check_sequences
from voxmmsd.io.filecheck import check_file_complete, nifti_version
from voxmmsd.io.geometry import Geometry, check_overlap, resample_to
from voxmmsd.io.orientation import same_voxels, turn_onto
from voxmmsd.io.parallel import map_ordered
from voxmmsd.sequences import REFERENCE, SEQUENCE_NAMES, SEQUENCES, reference_for

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
    #: uint8 (z, y, x) brain mask from brain extraction (voxmmsd.exam.load), applied to ``image``; None if none ran
    brain_mask: Optional[np.ndarray] = None
    #: how the exam was brought onto the grid (registration, brain extraction), for report.json
    preparation: Dict[str, Any] = field(default_factory=dict)
    #: RGB uint8 picture of the registration / brain mask (voxmmsd.exam.qc), or None
    exam_picture: Optional[np.ndarray] = None

    def channel(self, sequence: str) -> np.ndarray:
        return self.image[self.sequences.index(sequence)]


def read_image(path: Path, what: str = "image", label: bool = False) -> sitk.Image:
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
    return check_image(image, path, what, label)


def check_image(image: sitk.Image, path: Path, what: str = "image", label: bool = False) -> sitk.Image:
    """Validate dimensionality, emptiness and finiteness; squeeze a trailing singleton 4th axis.

    ``label``: a label map, which may be all zero (an answer: no tumour); an all-zero image is refused."""
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
    if not label and not np.any(arr):
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


def check_label_grid(files: CaseFiles, label: Geometry, grids: Mapping[str, Geometry]) -> None:
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


def read_sequences(files: CaseFiles, allow_missing: Sequence[str] = ()
                   ) -> Tuple[List[str], Dict[str, sitk.Image], List[str]]:
    """(the sequences present in channel order, each read on its own grid, the warnings of the checks): the one
    reading of a case's images. The missing-sequence check (:func:`voxmmsd.io.discovery.check_sequences`: every
    sequence not in ``allow_missing``, and at least one), the check that no two are the same file, and per image
    :func:`read_sequence`'s checks."""
    check_sequences(files, allowed=allow_missing)
    present = [s for s in SEQUENCES if s in files.sequences]
    check_distinct({s: files.sequences[s] for s in present}, SEQUENCE_NAMES)
    native: Dict[str, sitk.Image] = {}
    warnings: List[str] = []
    # decoded in parallel threads (the gzip stream and ITK's reader release the GIL); the same images, warnings and
    # errors as one after another in channel order (the first failing sequence in that order raises)
    found = map_ordered(lambda s: read_sequence(files.sequences[s], SEQUENCE_NAMES[s]), present, None,
                        name="voxmmsd-read")
    for seq, (image, seen) in zip(present, found):
        native[seq] = image
        warnings.extend(seen)
    return present, native, warnings


def onto_grid(files: CaseFiles, native: Mapping[str, sitk.Image], reference: str,
              transforms: Optional[Mapping[str, sitk.Transform]] = None
              ) -> Tuple[Dict[str, np.ndarray], Dict[str, str]]:
    """(sequence -> float32 voxels on ``reference``'s grid, sequence -> how it was resampled): the one way a case's
    images go onto one grid. A sequence with a transform in ``transforms`` (a registration) is resampled through
    it; else one on the reference's grid is taken voxel for voxel (resampling through the identity would still
    move intensities by rounding, and the brain's edge with them), one holding the reference grid's voxels in
    another axis order or direction (stored RAS against LPS) is turned onto it, never resampled, and any other is
    resampled in physical space after the check that it covers the reference
    (:func:`voxmmsd.io.geometry.check_overlap`)."""
    ref_geom = Geometry.of(native[reference])
    ref_name = f"{SEQUENCE_NAMES[reference]} ({files.sequences[reference]})"
    channels: Dict[str, np.ndarray] = {}
    resampled: Dict[str, str] = {}
    for seq, img in native.items():
        geom = Geometry.of(img)
        if transforms and seq in transforms:
            arr = sitk.GetArrayFromImage(resample_to(img, ref_geom, transform=transforms[seq]))
            resampled[seq] = f"through its registration: {geom.describe()} -> {ref_geom.describe()}"
        elif seq == reference or geom.same_as(ref_geom):
            arr = sitk.GetArrayFromImage(img)
        elif same_voxels(geom, ref_geom):
            arr = turn_onto(sitk.GetArrayFromImage(img), geom, ref_geom)
        else:
            check_overlap(f"{SEQUENCE_NAMES[seq]} ({files.sequences[seq]})", geom, ref_geom, ref_name)
            resampled[seq] = f"{geom.describe()} -> {ref_geom.describe()}"
            arr = sitk.GetArrayFromImage(resample_to(img, ref_geom))
        channels[seq] = arr.astype(np.float32, copy=False)
    return channels, resampled


def read_label_onto(files: CaseFiles, reference: str, ref_geom: Geometry, grids: Mapping[str, Geometry]
                    ) -> Tuple[np.ndarray, Optional[str]]:
    """The case's label map (uint8) on the reference grid, and how it was resampled (None if not): it must lie on
    the grid of one of the images (:func:`check_label_grid`); turned where it holds the reference grid's voxels in
    another axis order, else resampled with nearest neighbour."""
    if files.label is None:
        raise ValueError(f"case {files.case_id!r} has no label map")
    limg = read_image(files.label, "label map", label=True)
    lgeom = Geometry.of(limg)
    check_label_grid(files, lgeom, grids)
    why = None
    if lgeom.same_as(ref_geom):
        larr = sitk.GetArrayFromImage(limg)
    elif same_voxels(lgeom, ref_geom):  # the reference's grid stored in another axis order
        larr = turn_onto(sitk.GetArrayFromImage(limg), lgeom, ref_geom)
    else:
        check_overlap(f"label map ({files.label})", lgeom, ref_geom, SEQUENCE_NAMES[reference])
        why = f"{lgeom.describe()} -> {ref_geom.describe()}"
        larr = sitk.GetArrayFromImage(resample_to(limg, ref_geom, label=True))
    if larr.dtype.kind == "f" and not np.allclose(larr, np.round(larr)):
        raise InputError(f"label map {files.label} holds non-integer values; it must be a label map.")
    if larr.min() < 0 or larr.max() > 255:
        raise InputError(f"label map {files.label} holds values outside 0..255 "
                         f"({larr.min()}..{larr.max()}); it must be a tumour label map.")
    return larr.astype(np.uint8), why


def load_case(files: CaseFiles, reference: str = REFERENCE, with_label: bool = True,
              allow_missing: Sequence[str] = ()) -> Case:
    """Read a case's sequences onto the reference sequence's grid (:func:`voxmmsd.sequences.reference_for`).

    The images are read and checked by :func:`read_sequences` and put on the grid by :func:`onto_grid` (the raw
    exam's :func:`voxmmsd.exam.load.load_exam` does the same, with registration and brain extraction between);
    the label map, which must lie on the grid of one of the sequences (:func:`check_label_grid`), is resampled
    with nearest neighbour when that is not the reference's. No two sequences may be the same file or hold
    identical voxels. Sequences in ``allow_missing`` may be absent. Nothing is written anywhere.
    """
    present, native, warnings = read_sequences(files, allow_missing)
    chosen = reference_for(present, reference)
    if chosen != reference:
        log.warning("reference %s missing in case %s; using %s's grid", reference, files.case_id, chosen)
    channels, resampled = onto_grid(files, native, chosen)
    ref_geom = Geometry.of(native[chosen])
    label = None
    if with_label and files.label is not None:
        grids = {s: Geometry.of(img) for s, img in native.items()}
        label, why = read_label_onto(files, chosen, ref_geom, grids)
        if why:
            resampled["label"] = why
    for seq, why in resampled.items():
        log.info("case %s: resampled %s: %s", files.case_id, seq, why)
    check_distinct_arrays(channels, files.sequences, {s: SEQUENCE_NAMES[s] for s in present})
    return Case(files.case_id, np.stack([channels[s] for s in present]), present, ref_geom, chosen, label, files,
                resampled, warnings)

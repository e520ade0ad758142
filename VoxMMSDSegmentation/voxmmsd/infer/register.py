"""Optional rigid co-registration of the other sequences onto the reference (T1c), and a skull-strip check.

Registration: SimpleITK, Mattes mutual information, a rigid (Euler) transform
initialised at the images' centres, three resolution levels. The moving images are then
resampled onto the reference grid with the found transform (linear).
"""

from __future__ import annotations

import logging
from typing import Dict, List, Sequence

import numpy as np
import SimpleITK as sitk

from voxmmsd.errors import InputError
from voxmmsd.io.discovery import SEQUENCE_NAMES, SEQUENCES, CaseFiles, missing_error
from voxmmsd.io.geometry import Geometry
from voxmmsd.io.reader import Case, read_image

log = logging.getLogger(__name__)

#: an image whose exactly-zero (or minimum-valued) voxels make up less than this fraction
#: of the volume does not look skull-stripped (skull-stripped MRI has a wide zero background)
MIN_BACKGROUND_FRACTION = 0.15


def register_rigid(fixed: sitk.Image, moving: sitk.Image, iterations: int = 100, seed: int = 0) -> sitk.Transform:
    """A rigid transform mapping ``fixed`` physical points into ``moving`` (mutual information)."""
    f = sitk.Cast(fixed, sitk.sitkFloat32)
    m = sitk.Cast(moving, sitk.sitkFloat32)
    init = sitk.CenteredTransformInitializer(f, m, sitk.Euler3DTransform(),
                                             sitk.CenteredTransformInitializerFilter.GEOMETRY)
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(0.1, seed)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=iterations,
                                                 relaxationFactor=0.5)
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(init, inPlace=False)
    try:
        tx = reg.Execute(f, m)
    except RuntimeError as exc:
        raise InputError(f"Rigid registration failed: {str(exc).strip().splitlines()[-1]}. Check that the images "
                         f"show the same head, or run without --register.") from None
    log.info("registration: metric %.4f after %d iterations (%s)", reg.GetMetricValue(),
             reg.GetOptimizerIteration(), reg.GetOptimizerStopConditionDescription())
    return tx


def resample_with(moving: sitk.Image, reference: Geometry, transform: sitk.Transform) -> sitk.Image:
    return sitk.Resample(sitk.Cast(moving, sitk.sitkFloat32), list(reference.size), transform, sitk.sitkLinear,
                         reference.origin, reference.spacing, reference.direction, 0.0, sitk.sitkFloat32)


def background_fraction(array: np.ndarray) -> float:
    """Fraction of voxels at the image's minimum value (0 in skull-stripped MRI)."""
    lo = array.min()
    return float(np.count_nonzero(array <= lo)) / array.size


def skull_strip_warnings(case: Case) -> List[str]:
    """Warnings for sequences that do not look skull-stripped (the models are trained on stripped brains)."""
    out = []
    for i, seq in enumerate(case.sequences):
        frac = background_fraction(case.image[i])
        if frac < MIN_BACKGROUND_FRACTION:
            out.append(f"{SEQUENCE_NAMES[seq]} does not look skull-stripped (only {frac:.0%} background voxels); "
                       f"the model expects skull-stripped images. Strip the skull (e.g. HD-BET or SynthStrip) "
                       f"for reliable results.")
    return out


def load_case_registered(files: CaseFiles, reference: str = "t1c", allow_missing: Sequence[str] = ()) -> Case:
    """Like :func:`voxmmsd.io.reader.load_case` (no label), but each other sequence is registered rigidly
    onto the reference before resampling."""
    if any(s not in set(allow_missing) for s in files.missing):
        raise missing_error(files, allow_missing)
    present = [s for s in SEQUENCES if s in files.sequences]
    if reference not in files.sequences:
        reference = present[0]
    fixed = read_image(files.sequences[reference], SEQUENCE_NAMES[reference])
    geom = Geometry.of(fixed)
    channels: List[np.ndarray] = []
    resampled: Dict[str, str] = {}
    for seq in present:
        if seq == reference:
            channels.append(sitk.GetArrayFromImage(fixed).astype(np.float32))
            continue
        moving = read_image(files.sequences[seq], SEQUENCE_NAMES[seq])
        tx = register_rigid(fixed, moving)
        channels.append(sitk.GetArrayFromImage(resample_with(moving, geom, tx)))
        resampled[seq] = f"rigidly registered (mutual information) onto {SEQUENCE_NAMES[reference]}"
    case = Case(files.case_id, np.stack(channels), present, geom, reference, None, files, resampled)
    case.warnings.extend(skull_strip_warnings(case))
    return case

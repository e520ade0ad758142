"""Rigid co-registration of a sequence onto the reference (T1c), with a check that it converged.

SimpleITK: Mattes mutual information (32 bins, a fixed random 3 % of the voxels: the sample is drawn with
the fixed seed :data:`SEED`, on one ITK thread, with optimiser scales computed here rather than
by ITK's randomly sampling estimator: the same exam always gives the same transform), a rigid
(Euler) transform started at the identity (series of one session share the scanner's
coordinates, so the identity is the right start; centring the fields of view would be wrong
when they cover different parts of the head), regular-step gradient descent over three
resolution levels (shrink 4, 2, 1; smoothing 2, 1, 0 mm).

Convergence check (:func:`check_result`): the optimiser must stop on a small step, not on its
iteration limit; the metric at the result must be better than at the identity; and the motion
found must be plausible between series of one session (at most :data:`MAX_ROTATION_DEG` and
:data:`MAX_TRANSLATION_MM`). A result worse than the identity is replaced by the identity
(with a warning); an implausible one is refused.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Dict, Iterator

import numpy as np
import SimpleITK as sitk

from voxmmsd.errors import ConfigError, InputError

log = logging.getLogger(__name__)

MODES = ("auto", "on", "off")
#: motion between two series of one session beyond which a registration result is not believed
MAX_ROTATION_DEG = 15.0
MAX_TRANSLATION_MM = 25.0
#: gradient-descent iterations per pyramid level. 400, not ITK's usual 200: the optimiser scales computed here from
#: the field of view's corners (for repeatable runs) are a little larger than ITK's sampled estimate, so rotations
#: move in smaller steps; a T2w of the raw-exam test needed more than 200 at a coarse level (121 at the finest)
ITERATIONS = 400
#: fraction of the reference's voxels the metric samples (fixed random set)
SAMPLING = 0.03
#: the seed of that random set. Never 0: SimpleITK reads 0 as sitkWallClock (a new sample on every run, so the
#: same exam registered twice gave different transforms and segmentations)
SEED = 20250101
#: ITK threads while registering (see :func:`one_thread`)
THREADS = 1


@dataclass(frozen=True)
class Registration:
    """A rigid transform mapping reference (fixed) physical points into the moving image, and its check."""

    transform: sitk.Euler3DTransform
    metric_identity: float
    metric_final: float
    iterations: int
    stop: str
    rotation_deg: float
    translation_mm: float
    converged: bool

    def to_dict(self) -> Dict[str, Any]:
        return {"method": "rigid (Euler), Mattes mutual information", "metric_identity": round(self.metric_identity, 5),
                "metric_final": round(self.metric_final, 5), "iterations": self.iterations, "stop": self.stop,
                "rotation_deg": round(self.rotation_deg, 3), "translation_mm": round(self.translation_mm, 3),
                "converged": self.converged,
                # Euler3DTransform (fixed/reference point -> moving point): centre (mm), angles (rad), translation
                "transform": {"center": [round(float(c), 4) for c in self.transform.GetCenter()],
                              "parameters": [round(float(v), 6) for v in self.transform.GetParameters()]}}


def check_mode(mode: str, option: str = "--register") -> str:
    """``auto``, ``on`` or ``off`` (any case) for ``option``; anything else is a :class:`ConfigError`."""
    mode = (mode or "auto").lower()
    if mode not in MODES:
        raise ConfigError(f"Unknown {option} {mode!r}; use one of {', '.join(MODES)}.")
    return mode


def _method(seed: int) -> sitk.ImageRegistrationMethod:
    if seed == sitk.sitkWallClock:
        raise ValueError("seed 0 means 'from the wall clock' to SimpleITK: give a fixed non-zero seed")
    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=32)
    reg.SetMetricSamplingStrategy(reg.RANDOM)
    reg.SetMetricSamplingPercentage(SAMPLING, seed)
    reg.SetInterpolator(sitk.sitkLinear)
    return reg


@contextlib.contextmanager
def one_thread() -> Iterator[None]:
    """ITK on :data:`THREADS` thread(s) while registering. With several, ITK splits the metric's sums over its
    threads dynamically, so the rounding (and, through the optimiser's path, the transform found) changed from
    run to run; the registration's own thread setting does not reach every filter it runs."""
    before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(THREADS)
    try:
        yield
    finally:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(before)


def _identity(fixed: sitk.Image) -> sitk.Euler3DTransform:
    tx = sitk.Euler3DTransform()
    size = np.asarray(fixed.GetSize(), float)
    tx.SetCenter(fixed.TransformContinuousIndexToPhysicalPoint([float(v) for v in (size - 1) / 2]))
    return tx


def metric(fixed: sitk.Image, moving: sitk.Image, transform: sitk.Transform, seed: int = SEED) -> float:
    """Mattes mutual information (negative: lower is better) of ``moving`` under ``transform`` on ``fixed``."""
    reg = _method(seed)
    reg.SetInitialTransform(transform, inPlace=False)
    return float(reg.MetricEvaluate(sitk.Cast(fixed, sitk.sitkFloat32), sitk.Cast(moving, sitk.sitkFloat32)))


def physical_shift_scales(fixed: sitk.Image, transform: sitk.Euler3DTransform) -> list:
    """Optimiser scales of a rigid transform: the squared largest shift (mm) of a corner of ``fixed`` per unit of
    each parameter (the rule of ITK's physical-shift estimator, computed here on the eight corners: ITK's
    estimator samples points with its process-wide random generator, which made runs differ)."""
    size = np.asarray(fixed.GetSize(), float)
    centre = np.asarray(transform.GetCenter())
    corners = [np.asarray(fixed.TransformContinuousIndexToPhysicalPoint([float(c) for c in (size - 1) * np.array(b)]))
               for b in np.ndindex(2, 2, 2)]
    radius = max(float(np.linalg.norm(c - centre)) for c in corners)
    return [radius ** 2] * 3 + [1.0] * 3


def motion_of(transform: sitk.Euler3DTransform) -> tuple:
    """(rotation angle in degrees, translation of the rotation centre in mm) of a rigid transform."""
    m = np.asarray(transform.GetMatrix()).reshape(3, 3)
    angle = float(np.degrees(np.arccos(np.clip((np.trace(m) - 1) / 2, -1.0, 1.0))))
    return angle, float(np.linalg.norm(transform.GetTranslation()))


def register_rigid(fixed: sitk.Image, moving: sitk.Image, what: str = "image", reference: str = "reference",
                   iterations: int = ITERATIONS, seed: int = SEED) -> Registration:
    """Register ``moving`` rigidly onto ``fixed`` and check the result (see the module's notes)."""
    f = sitk.Cast(fixed, sitk.sitkFloat32)
    m = sitk.Cast(moving, sitk.sitkFloat32)
    start = _identity(f)
    reg = _method(seed)
    reg.SetOptimizerAsRegularStepGradientDescent(learningRate=1.0, minStep=1e-4, numberOfIterations=iterations,
                                                 relaxationFactor=0.5, gradientMagnitudeTolerance=1e-6)
    reg.SetOptimizerScales(physical_shift_scales(f, start))
    reg.SetShrinkFactorsPerLevel([4, 2, 1])
    reg.SetSmoothingSigmasPerLevel([2.0, 1.0, 0.0])
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    reg.SetInitialTransform(start, inPlace=False)
    try:
        with one_thread():
            result = reg.Execute(f, m)
    except RuntimeError as exc:
        raise InputError(f"Rigid registration of {what} onto {reference} failed: "
                         f"{str(exc).strip().splitlines()[-1]}. Check that the images show the same head, or run "
                         f"with --register off if they are already aligned.") from None
    tx = sitk.Euler3DTransform(sitk.CompositeTransform(result).GetNthTransform(0))
    with one_thread():
        before = metric(f, m, start, seed)
        after = metric(f, m, tx, seed)
    rot, shift = motion_of(tx)
    stop = reg.GetOptimizerStopConditionDescription()
    converged = "maximum number of iterations" not in stop.lower()
    out = Registration(tx, before, after, int(reg.GetOptimizerIteration()), stop, rot, shift, converged)
    log.info("registration of %s: MI %.4f -> %.4f, %d iterations, rotation %.2f deg, shift %.2f mm (%s)", what,
             before, after, out.iterations, rot, shift, stop)
    return out


def check_result(result: Registration, what: str, reference: str, fixed: sitk.Image) -> tuple:
    """(the transform to use, warning or None) after the convergence check; raises :class:`InputError` on a
    result that cannot be right."""
    if result.rotation_deg > MAX_ROTATION_DEG or result.translation_mm > MAX_TRANSLATION_MM:
        raise InputError(f"Registering {what} onto {reference} found a motion of {result.rotation_deg:.1f} degrees "
                         f"and {result.translation_mm:.1f} mm, more than plausible between series of one session "
                         f"({MAX_ROTATION_DEG:g} degrees, {MAX_TRANSLATION_MM:g} mm): the registration did not "
                         f"converge to the right place, or the images are of different sessions or patients. "
                         f"Check the images, or align them yourself and run with --register off.")
    if not result.metric_final < result.metric_identity:
        return _identity(fixed), (f"Registration of {what} onto {reference} did not improve the alignment "
                                  f"(mutual information {result.metric_identity:.4f} at the scanner's alignment, "
                                  f"{result.metric_final:.4f} after); kept the scanner's alignment. Check "
                                  f"registration_qc.png.")
    if not result.converged:
        return result.transform, (f"Registration of {what} onto {reference} stopped at its iteration limit "
                                  f"({result.iterations}) before converging; check registration_qc.png.")
    return result.transform, None

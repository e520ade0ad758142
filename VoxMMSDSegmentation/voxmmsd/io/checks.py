"""Plausibility checks on input images, run before any compute (numpy only; no SimpleITK, no torch).

Two kinds of result: a refusal (:class:`~voxmmsd.errors.InputError` naming the file and the fix)
where a segmentation would be confidently wrong, and a warning (a string) where the result still
means something but deserves a second look.

The bytes on disk (a complete stream, a data block as long as the header says) are checked before
reading, by :mod:`voxmmsd.io.filecheck`.

* :func:`check_mri` -- one MRI volume: constant or near-constant, spacing and size outside what a
  brain MRI can have, the brain (non-background) volume in mL, a background that is not 0.
* :func:`check_distinct` -- the same file or the same voxels given for two different sequences.
* :func:`looks_skull_stripped` -- is this volume a skull-stripped brain (the models' input)?
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from voxmmsd.errors import InputError
from voxmmsd.io.digest import sha256_file

#: voxel spacing (mm) a brain MRI can have; outside: refused (a wrong header, or not an MRI of a head)
SPACING_RANGE_MM: Tuple[float, float] = (0.1, 8.0)
#: fewest voxels along an axis of a 3-D brain MRI
MIN_AXIS_VOXELS = 10
#: non-background (brain or head) volume, mL: outside REFUSE -> refused, outside WARN -> warning
BRAIN_ML_REFUSE: Tuple[float, float] = (10.0, 12000.0)
BRAIN_ML_WARN: Tuple[float, float] = (250.0, 2500.0)
#: a field of view (of an image without a clean background) larger than this cannot be a head scan
MAX_FIELD_OF_VIEW_ML = 60000.0
#: a skull-stripped brain (with its CSF) is at most this large; a head with skull and scalp is larger
MAX_STRIPPED_ML = 2600.0
#: a skull-stripped volume has at least this fraction of voxels at exactly the background value (a tight
#: crop around a brain still has about half; noisy scanner air has well under 1 %)
MIN_BACKGROUND_FRACTION = 0.05
#: a background covering this fraction of the volume at a value other than 0 is refused
NONZERO_BACKGROUND_FRACTION = 0.15
#: relative spread (p99 - p1) / max(|p99|, |p1|) of the foreground below which an image is near-constant
NEAR_CONSTANT_SPREAD = 1e-3

# -- one MRI volume ------------------------------------------------------------------------

def _sample(array: np.ndarray, limit: int = 2_000_000) -> np.ndarray:
    flat = array.reshape(-1)
    step = max(1, flat.size // limit)
    return flat[::step]


def background_value(array: np.ndarray) -> Tuple[float, float]:
    """(value, fraction of voxels) of the background: 0 if that is frequent, else the minimum."""
    n = array.size
    zero = float(np.count_nonzero(array == 0)) / n
    lo = float(array.min())
    at_min = float(np.count_nonzero(array <= lo)) / n if lo != 0 else zero
    if zero >= MIN_BACKGROUND_FRACTION or zero >= at_min:
        return 0.0, zero
    return lo, at_min


@dataclass(frozen=True)
class SkullStripCheck:
    """The outcome of :func:`looks_skull_stripped` (``stripped`` and the measures it was decided on)."""

    stripped: bool
    background_fraction: float  # fraction of voxels at the background value
    foreground_ml: float  # volume of the non-background voxels
    shell_ratio: float  # mean intensity 4-10 mm inside the surface / min(outer 3 mm, deeper than 12 mm); nan if unknown
    reason: str  # why it does not look skull-stripped ("" if it does)


#: a layer 4-10 mm under the surface darker than this fraction of both the surface and the interior is a skull
MAX_SKULL_SHELL_RATIO = 0.5


def shell_ratio(foreground: np.ndarray, array: np.ndarray, spacing_xyz: Sequence[float]) -> float:
    """Mean intensity 4-10 mm beneath the foreground's surface over the smaller of the mean of the outer
    3 mm and of the part deeper than 12 mm (on a grid of about 2 mm); nan when a layer is empty.

    In a head the 4-10 mm layer is skull (no MRI signal) between scalp and brain: a ratio well below 1.
    In a skull-stripped brain that layer is cortex and white matter: about 1 or more.
    """
    from scipy import ndimage

    spacing_zyx = [float(s) for s in spacing_xyz][::-1]
    step = [max(1, int(round(2.0 / s))) for s in spacing_zyx]
    sl = tuple(slice(None, None, k) for k in step)
    mask = foreground[sl]
    values = array[sl]
    depth = ndimage.distance_transform_edt(np.pad(mask, 1), sampling=[s * k for s, k in zip(spacing_zyx, step)])
    depth = depth[1:-1, 1:-1, 1:-1]
    outer = values[mask & (depth <= 3.0)]
    shell = values[(depth > 4.0) & (depth <= 10.0)]
    inner = values[depth > 12.0]
    if not (outer.size and shell.size and inner.size):
        return float("nan")
    ref = min(float(outer.mean()), float(inner.mean()))
    return float(shell.mean()) / ref if ref > 0 else float("nan")


def looks_skull_stripped(array: np.ndarray, spacing_xyz: Sequence[float]) -> SkullStripCheck:
    """Does ``array`` (z, y, x) with voxel spacing ``spacing_xyz`` (mm, x y z) look like a skull-stripped brain?

    Three tests, each a sign of skull and scalp still there:

    1. background: a skull-stripped MRI has a wide background at exactly one value (0, or the
       minimum): at least :data:`MIN_BACKGROUND_FRACTION` of the voxels. Scanner images have noisy air.
    2. size: the non-background part is no larger than a brain (:data:`MAX_STRIPPED_ML`).
    3. skull shell: the layer 4-10 mm under the surface is not a dark shell (skull bone gives no
       MRI signal) between a brighter surface (scalp) and a brighter interior (brain):
       :func:`shell_ratio` >= :data:`MAX_SKULL_SHELL_RATIO`.

    Pure; about 0.3 s for a 240 x 240 x 155 volume.
    """
    arr = np.asarray(array)
    value, frac = background_value(arr)
    voxel_ml = float(np.prod([float(s) for s in spacing_xyz])) / 1000.0
    fg_ml = float(arr.size - round(frac * arr.size)) * voxel_ml
    if frac < MIN_BACKGROUND_FRACTION:
        return SkullStripCheck(False, frac, fg_ml, float("nan"),
                               f"only {frac:.0%} of the voxels are background (a skull-stripped image has a wide "
                               f"background of zeros)")
    if fg_ml > MAX_STRIPPED_ML:
        return SkullStripCheck(False, frac, fg_ml, float("nan"),
                               f"the non-background part is {fg_ml:.0f} mL, larger than a brain (at most "
                               f"{MAX_STRIPPED_ML:.0f} mL): skull and scalp are still there")
    ratio = shell_ratio(arr != value, arr, spacing_xyz)
    if ratio < MAX_SKULL_SHELL_RATIO:
        return SkullStripCheck(False, frac, fg_ml, ratio,
                               f"a dark shell 4-10 mm under the surface (intensity {ratio:.2f} x the surface's and "
                               f"the interior's) looks like the skull between scalp and brain")
    return SkullStripCheck(True, frac, fg_ml, ratio, "")


def check_mri(array: np.ndarray, spacing_xyz: Sequence[float], path: Path, what: str = "image") -> List[str]:
    """Refuse an MRI volume no segmentation can be trusted on; return warnings for doubtful ones.

    Refused: constant or near-constant; spacing outside :data:`SPACING_RANGE_MM`; fewer than
    :data:`MIN_AXIS_VOXELS` along an axis; a non-background volume outside :data:`BRAIN_ML_REFUSE`;
    a wide background at a value other than 0. Warned: a brain volume outside :data:`BRAIN_ML_WARN`.
    """
    arr = np.asarray(array)
    spacing = [float(s) for s in spacing_xyz]
    size_xyz = tuple(int(v) for v in arr.shape[::-1])
    lo, hi = float(arr.min()), float(arr.max())
    if lo == hi:
        raise InputError(f"{what} {path} is constant (every voxel is {lo:g}): it holds no image. Check that the right "
                         f"file was given and that it was exported correctly.")
    bad = [s for s in spacing if not SPACING_RANGE_MM[0] <= s <= SPACING_RANGE_MM[1]]
    if bad:
        raise InputError(f"{what} {path} has voxel spacing {tuple(round(s, 4) for s in spacing)} mm, outside what a "
                         f"brain MRI can have ({SPACING_RANGE_MM[0]}-{SPACING_RANGE_MM[1]} mm): the header is wrong or "
                         f"this is not a brain MRI. Fix the spacing in the header (e.g. re-export from DICOM).")
    if min(size_xyz) < MIN_AXIS_VOXELS:
        raise InputError(f"{what} {path} has only {size_xyz} voxels (x, y, z): too small to hold a brain MRI "
                         f"(at least {MIN_AXIS_VOXELS} along each axis). Give the full 3-D volume.")
    value, frac = background_value(arr)
    if value != 0 and frac >= NONZERO_BACKGROUND_FRACTION:
        raise InputError(f"{what} {path}: its background ({frac:.0%} of the voxels) is {value:g}, not 0; the models "
                         f"take every non-zero voxel for brain. Shift the image so that the background is 0 "
                         f"(subtract {value:g}), or give the original image.")
    fg = _sample(arr)
    fg = fg[fg != value]
    if fg.size:
        p1, p99 = (float(v) for v in np.percentile(fg, [1, 99]))
        if p99 - p1 <= NEAR_CONSTANT_SPREAD * max(abs(p99), abs(p1), 1e-12):
            raise InputError(f"{what} {path} is nearly constant (98% of its non-background voxels lie within "
                             f"{p1:g}..{p99:g}): it looks like a mask, not an MRI. Give the MRI image itself.")
    voxel_ml = float(np.prod(spacing)) / 1000.0
    fg_ml = float(arr.size - round(frac * arr.size)) * voxel_ml
    has_background = frac >= MIN_BACKGROUND_FRACTION  # else (noisy air) the foreground is the whole field of view
    if has_background and not BRAIN_ML_REFUSE[0] <= fg_ml <= BRAIN_ML_REFUSE[1] or \
            not has_background and arr.size * voxel_ml > MAX_FIELD_OF_VIEW_ML:
        shown = fg_ml if has_background else arr.size * voxel_ml
        raise InputError(f"{what} {path}: the imaged {'brain/head' if has_background else 'field of view'} is "
                         f"{shown:.1f} mL (voxel spacing {tuple(round(s, 3) for s in spacing)} mm), impossible for "
                         f"a head ({BRAIN_ML_REFUSE[0]:.0f}-{BRAIN_ML_REFUSE[1]:.0f} mL). The spacing in the header "
                         f"is probably wrong; fix it (e.g. re-export from DICOM).")
    warnings: List[str] = []
    brain_like = has_background and fg_ml <= MAX_STRIPPED_ML  # (a head is checked elsewhere)
    if brain_like and not BRAIN_ML_WARN[0] <= fg_ml <= BRAIN_ML_WARN[1]:
        warnings.append(f"{what}: the brain is {fg_ml:.0f} mL, outside the usual {BRAIN_ML_WARN[0]:.0f}-"
                        f"{BRAIN_ML_WARN[1]:.0f} mL; check the voxel spacing in the header of {path} "
                        f"(tumour volumes scale with it).")
    return warnings


# -- several sequences ----------------------------------------------------------------------

def check_distinct(paths: Mapping[str, Path], names: Mapping[str, str]) -> None:
    """Refuse one file given for two sequences (the same path, or files with identical bytes)."""
    resolved: Dict[str, str] = {}
    by_size: Dict[int, List[str]] = {}
    for key, p in paths.items():
        path = Path(p)
        real = str(path.resolve()) if path.exists() else str(path)
        for other, r in resolved.items():
            if r == real:
                raise InputError(f"The same file {path} is given for {names[other]} and {names[key]}. Give each "
                                 f"sequence its own image.")
        resolved[key] = real
        if path.is_file():
            by_size.setdefault(path.stat().st_size, []).append(key)
    for keys in by_size.values():
        if len(keys) < 2:
            continue
        digests: Dict[str, str] = {}
        for key in keys:
            h = sha256_file(Path(paths[key]))
            for other, d in digests.items():
                if d == h:
                    raise InputError(f"{names[other]} ({paths[other]}) and {names[key]} ({paths[key]}) are the same "
                                     f"file (identical bytes). Give each sequence its own image.")
            digests[key] = h


def check_distinct_arrays(arrays: Mapping[str, np.ndarray], paths: Mapping[str, Path],
                          names: Mapping[str, str]) -> None:
    """Refuse two sequences holding identical voxels (the same image exported twice under two names)."""
    keys = list(arrays)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            x, y = arrays[a], arrays[b]
            if x.shape == y.shape and np.array_equal(x, y):
                raise InputError(f"{names[a]} ({paths[a]}) and {names[b]} ({paths[b]}) hold identical voxels: the "
                                 f"same image was given for two sequences. Give each sequence its own image.")

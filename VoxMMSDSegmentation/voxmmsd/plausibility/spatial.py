"""Is the tumour's size, number and place that of a tumour? (The label map's shape only.)

* ``tumour_found`` -- the whole tumour's volume (mL): nothing found on a tumour case usually
  means the model failed on this input;
* ``brain_fraction`` -- share of the brain labelled tumour: a network that labels normal white
  matter marks a large share;
* ``components`` -- number of separate tumour pieces of at least :data:`COMPONENT_ML`: a glioma is
  one lesion, rarely a few; scattered pieces are a model's noise;
* ``mirror_overlap`` -- share of the tumour whose mirror image across the brain's midline is also
  labelled: tumour in both hemispheres, symmetric, is normal anatomy taken for tumour.
"""

from __future__ import annotations

from typing import List

import numpy as np

from voxmmsd.plausibility.record import CheckResult, Limit, measured, not_applicable
from voxmmsd.plausibility.reference import Reference

GROUP = "spatial"

LIMITS = {
    "tumour_found": Limit("min", doubtful=0.1),
    "brain_fraction": Limit("max", doubtful=0.2, fail=0.4),
    "components": Limit("max", doubtful=3, fail=6),
    "mirror_overlap": Limit("max", doubtful=0.5, fail=0.65),
}
MEANINGS = {
    "tumour_found": "whole-tumour volume (mL): an empty result on a tumour case means the model failed",
    "brain_fraction": "share of the brain labelled tumour",
    "components": "separate tumour pieces of at least 1 mL: a glioma is one lesion, rarely a few",
    "mirror_overlap": "share of the tumour mirrored by tumour across the midline: symmetric 'tumour' is anatomy",
}
#: smallest piece (mL) counted by ``components``
COMPONENT_ML = 1.0


def _check(name: str, value: float, note: str = "", **details) -> CheckResult:
    return measured(name, GROUP, value, LIMITS[name], MEANINGS[name], note, **details)


def tumour_found(ref: Reference) -> CheckResult:
    return _check("tumour_found", np.count_nonzero(ref.label > 0) * ref.voxel_ml)


def brain_fraction(ref: Reference) -> CheckResult:
    brain = int(np.count_nonzero(ref.brain))
    if brain == 0:
        return not_applicable("brain_fraction", GROUP, LIMITS["brain_fraction"], MEANINGS["brain_fraction"],
                              "no brain found")
    return _check("brain_fraction", np.count_nonzero((ref.label > 0) & ref.brain) / brain)


def component_sizes_ml(mask: np.ndarray, voxel_ml: float) -> np.ndarray:
    """Volumes (mL) of the 26-connected components of ``mask``, largest first."""
    from scipy import ndimage

    comps, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return np.zeros(0)
    sizes = np.bincount(comps.ravel(), minlength=n + 1)[1:] * voxel_ml
    return np.sort(sizes)[::-1]


def components(ref: Reference) -> CheckResult:
    sizes = component_sizes_ml(ref.label > 0, ref.voxel_ml)
    big = sizes[sizes >= COMPONENT_ML]
    return _check("components", int(big.size), largest_ml=[round(float(s), 2) for s in big[:5]])


def mirror_overlap(ref: Reference) -> CheckResult:
    wt = ref.label > 0
    n = int(np.count_nonzero(wt))
    if ref.lr_axis is None or n == 0 or not ref.brain.any():
        why = "left-right axis unknown" if ref.lr_axis is None else "no tumour"
        return not_applicable("mirror_overlap", GROUP, LIMITS["mirror_overlap"], MEANINGS["mirror_overlap"], why)
    axis = ref.lr_axis
    centre = float(np.argwhere(ref.brain)[:, axis].mean())  # the brain's midline
    idx = np.argwhere(wt)
    mirrored = np.round(2 * centre - idx[:, axis]).astype(int)
    inside = (mirrored >= 0) & (mirrored < wt.shape[axis])
    idx = idx[inside]
    idx[:, axis] = mirrored[inside]
    hits = int(np.count_nonzero(wt[tuple(idx.T)]))
    return _check("mirror_overlap", hits / n)


def spatial_checks(ref: Reference) -> List[CheckResult]:
    return [tumour_found(ref), brain_fraction(ref), components(ref), mirror_overlap(ref)]

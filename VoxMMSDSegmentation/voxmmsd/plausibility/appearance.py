"""Does the segmented tumour look like tumour on the images? (The label map against the four sequences.)

Intensities are robust z-scores against the normal-appearing brain (:mod:`.reference`).

* ``enhancement`` -- enhancing tumour gains signal with contrast: median z(T1c) - z(T1n) over ET;
  ET that does not enhance is not ET (or T1n and T1c are swapped);
* ``et_bright_on_t1c`` -- ET is brighter on T1c than normal brain: median z(T1c) over ET;
* ``flair_hyperintensity`` -- the whole tumour is bright on FLAIR: median z(FLAIR) over WT;
* ``hyperintense_share`` -- share of WT voxels bright on FLAIR or T2w (z > :data:`BRIGHT_Z`): a map
  that lies partly on normal tissue (shifted, too large) has a low share;
* ``lesion_coverage`` -- of the clearly FLAIR-bright voxels within :data:`RING_MM` of the tumour,
  the share inside it: a shifted or too small map leaves the lesion's bright tissue outside.
"""

from __future__ import annotations

from typing import List

import numpy as np

from voxmmsd.plausibility.record import CheckResult, Limit, measured, not_applicable
from voxmmsd.plausibility.reference import Reference

GROUP = "appearance"

LIMITS = {
    "enhancement": Limit("min", doubtful=0.5, fail=0.0),
    "et_bright_on_t1c": Limit("min", doubtful=0.5),
    "flair_hyperintensity": Limit("min", doubtful=0.8, fail=0.3),
    "hyperintense_share": Limit("min", doubtful=0.65, fail=0.4),
    "lesion_coverage": Limit("min", doubtful=0.6, fail=0.35),
}
MEANINGS = {
    "enhancement": "ET gains signal with contrast: median z(T1c) - z(T1n) over ET (non-enhancing 'ET' is not ET)",
    "et_bright_on_t1c": "ET is brighter on T1c than the normal brain: median z(T1c) over ET",
    "flair_hyperintensity": "the whole tumour is bright on FLAIR: median z(FLAIR) over WT",
    "hyperintense_share": "share of the whole tumour bright on FLAIR or T2w: low when it covers normal tissue",
    "lesion_coverage": "share of the FLAIR-bright lesion near the tumour that the segmentation covers",
}
#: ET below this volume (mL) is too small to judge its enhancement
MIN_ET_ML = 0.3
#: a whole tumour below this volume (mL) is too small to judge its appearance
MIN_WT_ML = 0.5
#: "bright" on FLAIR / T2w: robust z above this
BRIGHT_Z = 1.0
#: "clearly bright" on FLAIR (lesion coverage): robust z above this
LESION_Z = 1.5
#: how far around the tumour (mm) the lesion coverage looks for FLAIR-bright tissue
RING_MM = 10.0


def _check(name: str, value: float, note: str = "", **details) -> CheckResult:
    return measured(name, GROUP, value, LIMITS[name], MEANINGS[name], note, **details)


def _na(name: str, why: str) -> CheckResult:
    return not_applicable(name, GROUP, LIMITS[name], MEANINGS[name], why)


def enhancement(ref: Reference) -> CheckResult:
    et = ref.label == 3
    if np.count_nonzero(et) * ref.voxel_ml < MIN_ET_ML:
        return _na("enhancement", f"ET under {MIN_ET_ML} mL")
    if not (ref.usable("t1c") and ref.usable("t1n")):
        return _na("enhancement", "needs T1n and T1c")
    return _check("enhancement", float(np.median(ref.z("t1c")[et] - ref.z("t1n")[et])))


def et_bright_on_t1c(ref: Reference) -> CheckResult:
    et = ref.label == 3
    if np.count_nonzero(et) * ref.voxel_ml < MIN_ET_ML:
        return _na("et_bright_on_t1c", f"ET under {MIN_ET_ML} mL")
    if not ref.usable("t1c"):
        return _na("et_bright_on_t1c", "needs T1c")
    return _check("et_bright_on_t1c", float(np.median(ref.z("t1c")[et])))


def _whole(ref: Reference) -> np.ndarray:
    return np.isin(ref.label, (1, 2, 3))


def flair_hyperintensity(ref: Reference) -> CheckResult:
    wt = _whole(ref)
    if np.count_nonzero(wt) * ref.voxel_ml < MIN_WT_ML:
        return _na("flair_hyperintensity", f"whole tumour under {MIN_WT_ML} mL")
    if not ref.usable("t2f"):
        return _na("flair_hyperintensity", "needs FLAIR")
    return _check("flair_hyperintensity", float(np.median(ref.z("t2f")[wt])))


def bright(ref: Reference) -> np.ndarray:
    """Voxels bright (z > :data:`BRIGHT_Z`) on FLAIR or T2w (those present)."""
    out = np.zeros(ref.label.shape, bool)
    for key in ("t2f", "t2w"):
        if ref.usable(key):
            out |= ref.z(key) > BRIGHT_Z
    return out


def hyperintense_share(ref: Reference) -> CheckResult:
    wt = _whole(ref)
    if np.count_nonzero(wt) * ref.voxel_ml < MIN_WT_ML:
        return _na("hyperintense_share", f"whole tumour under {MIN_WT_ML} mL")
    if not (ref.usable("t2f") or ref.usable("t2w")):
        return _na("hyperintense_share", "needs FLAIR or T2w")
    return _check("hyperintense_share", float(np.mean(bright(ref)[wt])))


def lesion_coverage(ref: Reference) -> CheckResult:
    wt = _whole(ref)
    if np.count_nonzero(wt) * ref.voxel_ml < MIN_WT_ML:
        return _na("lesion_coverage", f"whole tumour under {MIN_WT_ML} mL")
    if not ref.usable("t2f"):
        return _na("lesion_coverage", "needs FLAIR")
    lesion = ref.z("t2f") > LESION_Z
    ring = (ref.tumour_distance > 0) & (ref.tumour_distance <= RING_MM) & ref.inner
    inside, outside = int(np.count_nonzero(lesion & wt)), int(np.count_nonzero(lesion & ring))
    if inside + outside == 0:
        return _check("lesion_coverage", 0.0, note="no FLAIR-bright voxel in or near the tumour")
    return _check("lesion_coverage", inside / (inside + outside))


def appearance_checks(ref: Reference) -> List[CheckResult]:
    return [enhancement(ref), et_bright_on_t1c(ref), flair_hyperintensity(ref), hyperintense_share(ref),
            lesion_coverage(ref)]

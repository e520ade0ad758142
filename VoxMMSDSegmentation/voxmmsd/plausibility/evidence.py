"""How well each separate tumour component fits what tumour looks like, for the component rules.

Per 26-connected component of the whole tumour (:func:`tumour_components`) and per ET component
(:func:`et_components`): its volume, the share of its voxels bright on FLAIR or T2w, and the
enhancement of its ET (median z(T1c) - z(T1n)), all against the normal-appearing brain of
:mod:`.reference`. A component **fits** when it is bright on FLAIR/T2w (share at least
:data:`MIN_BRIGHT_SHARE`) and its ET, if any, enhances (at least :data:`MIN_ENHANCEMENT`); a
measure that cannot be taken (a missing sequence, too little ET) counts as no evidence against.

:func:`main_component` is the component a rule must never remove: the largest one that fits
of at least :data:`MIN_JUDGED_ML` (the largest one only when none does), so a bigger component that
fails the checks is never kept in place of a smaller one that fits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from voxmmsd.plausibility.appearance import BRIGHT_Z, MIN_ET_ML
from voxmmsd.plausibility.reference import Reference, prepare, strides

#: a component fits when at least this share of it is bright on FLAIR or T2w
MIN_BRIGHT_SHARE = 0.4
#: ... and its ET (if any) enhances at least this much (median z(T1c) - z(T1n))
MIN_ENHANCEMENT = 0.0
#: a component smaller than this (mL) is too small to judge: it neither fits nor fails (no evidence)
MIN_JUDGED_ML = 1.0
_CUBE = np.ones((3, 3, 3), bool)


@dataclass(frozen=True)
class ComponentEvidence:
    """One component (``index`` in the component map, from 1) and what it looks like."""

    index: int
    voxels: int
    volume_ml: float
    bright_share: Optional[float]  # None: no FLAIR or T2w (or not asked for: ET components)
    enhancement: Optional[float]  # None: ET under MIN_ET_ML, or no T1n/T1c
    #: smaller than this (mL), the component is not judged (:data:`MIN_JUDGED_ML`; ET components: MIN_ET_ML)
    min_judged_ml: float = MIN_JUDGED_ML

    @property
    def judged(self) -> bool:
        """Large enough and measured: there is evidence for or against it."""
        return self.volume_ml >= self.min_judged_ml and (self.bright_share is not None or
                                                         self.enhancement is not None)

    @property
    def fits(self) -> bool:
        """No evidence against it (a component too small to judge fits)."""
        if self.volume_ml < self.min_judged_ml:
            return True
        bright_ok = self.bright_share is None or self.bright_share >= MIN_BRIGHT_SHARE
        enh_ok = self.enhancement is None or self.enhancement >= MIN_ENHANCEMENT
        return bright_ok and enh_ok

    def describe(self) -> str:
        parts = [f"{self.volume_ml:.1f} mL"]
        if self.bright_share is not None:
            parts.append(f"{100 * self.bright_share:.0f}% bright on FLAIR/T2w")
        if self.enhancement is not None:
            parts.append(f"ET enhancement {self.enhancement:.2f}")
        return ", ".join(parts)


def _z(ref: Reference, key: str, values: np.ndarray) -> Optional[np.ndarray]:
    st = ref.stats.get(key)
    return None if st is None else (values.astype(np.float32) - st[0]) / st[1]


def measure(ref: Reference, images: Mapping[str, np.ndarray], label: np.ndarray, comps: np.ndarray,
            count: int, voxel_ml: float, brightness: bool = True) -> List[ComponentEvidence]:
    """The evidence of components 1..``count`` of ``comps`` on the full grid of ``images``/``label``
    (without ``brightness``: enhancement only, for ET components)."""
    from scipy import ndimage

    out: List[ComponentEvidence] = []
    for i, box in enumerate(ndimage.find_objects(comps, max_label=count), start=1):
        if box is None:
            continue
        inside = comps[box] == i
        n = int(np.count_nonzero(inside))
        bright: Optional[np.ndarray] = None
        for key in ("t2f", "t2w") if brightness else ():
            z = _z(ref, key, images[key][box][inside]) if key in images else None
            if z is not None:
                bright = (z > BRIGHT_Z) if bright is None else (bright | (z > BRIGHT_Z))
        enh = None
        et = inside & (label[box] == 3)
        if np.count_nonzero(et) * voxel_ml >= MIN_ET_ML and "t1c" in images and "t1n" in images:
            zc, zn = _z(ref, "t1c", images["t1c"][box][et]), _z(ref, "t1n", images["t1n"][box][et])
            if zc is not None and zn is not None:
                enh = float(np.median(zc - zn))
        out.append(ComponentEvidence(i, n, n * voxel_ml, None if bright is None else float(bright.mean()), enh,
                                     MIN_JUDGED_ML if brightness else MIN_ET_ML))
    return out


def _evidence(images: Mapping[str, np.ndarray], label: np.ndarray, mask: np.ndarray,
              spacing_zyx: Sequence[float], brain_mask: Optional[np.ndarray], brightness: bool = True
              ) -> Tuple[np.ndarray, List[ComponentEvidence]]:
    from scipy import ndimage

    comps, n = ndimage.label(mask, structure=_CUBE)
    if n == 0:
        return comps, []
    ref = prepare(images, label, spacing_zyx, brain_mask)
    voxel_ml = float(np.prod([float(s) for s in spacing_zyx])) / 1000.0
    return comps, measure(ref, images, label, comps, n, voxel_ml, brightness)


def tumour_components(images: Mapping[str, np.ndarray], label: np.ndarray, spacing_zyx: Sequence[float],
                      brain_mask: Optional[np.ndarray] = None) -> Tuple[np.ndarray, List[ComponentEvidence]]:
    """The 26-connected whole-tumour components (a map with values 1..n) and their evidence."""
    return _evidence(images, label, label > 0, spacing_zyx, brain_mask)


def et_components(images: Mapping[str, np.ndarray], label: np.ndarray, spacing_zyx: Sequence[float],
                  brain_mask: Optional[np.ndarray] = None) -> Tuple[np.ndarray, List[ComponentEvidence]]:
    """The 26-connected ET components (values 1..n) and their evidence (enhancement only: ET need not be
    bright on FLAIR)."""
    return _evidence(images, label, label == 3, spacing_zyx, brain_mask, brightness=False)


def main_component(evidence: Sequence[ComponentEvidence]) -> Optional[ComponentEvidence]:
    """The largest judged component that fits; the largest of all when none does; None when there is none."""
    if not evidence:
        return None
    return max(evidence, key=lambda e: (e.judged and e.fits, e.voxels))


def distances_to(comps: np.ndarray, main: int, spacing_zyx: Sequence[float]) -> np.ndarray:
    """Per component index (position 0 unused): its distance (mm) to component ``main``, measured on the
    coarse grid of :mod:`.reference` (exact to a few mm)."""
    from scipy import ndimage

    step = strides(spacing_zyx)
    coarse = comps[tuple(slice(None, None, s) for s in step)]
    spacing = tuple(float(s) * n for s, n in zip(spacing_zyx, step))
    target = coarse == main
    if not target.any():  # a component too small for the coarse grid: measure at full resolution
        target, coarse, spacing = comps == main, comps, tuple(float(s) for s in spacing_zyx)
        step = (1, 1, 1)
    dist = ndimage.distance_transform_edt(~target, sampling=spacing)
    n = int(comps.max())
    out = np.full(n + 1, np.inf)
    idx = np.argwhere(comps > 0)
    ids = comps[tuple(idx.T)]
    cidx = np.minimum(idx // np.asarray(step), np.asarray(coarse.shape) - 1)
    d = dist[tuple(cidx.T)]
    np.minimum.at(out, ids, d)
    out[main] = 0.0
    return out

"""Component rules that use evidence: a component is kept or dropped by what it looks like.

The earlier rules kept the *largest* component whatever it was, so a large false positive (a
13 mL "ET" near the midline) could be kept while the real, smaller tumour was removed. Here
every 26-connected component is judged on the images (:mod:`voxmmsd.plausibility.evidence`:
bright on FLAIR/T2w, its ET enhancing) and

* the **main lesion** is the largest component that fits (the largest only when none fits); it is
  never removed;
* another component is removed when it does not fit while the main lesion does (it does not
  look like tumour, whatever its size), or when it is smaller than the size limit and more than
  :data:`CONNECT_MM` from the main lesion (an island); a small piece that fits next to the main
  lesion is part of it and stays.

When no component fits (the images give no evidence either way, e.g. a missing FLAIR and T2w),
only the size rule applies, around the main lesion. The ET rule does the same for ET components
(enhancement only), relabelling NETC instead of removing.
"""

from __future__ import annotations

from typing import Any, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from voxmmsd.plausibility.evidence import (
    ComponentEvidence,
    distances_to,
    et_components,
    main_component,
    tumour_components,
)

#: a component within this distance (mm) of the main lesion is connected to it
CONNECT_MM = 10.0


def _decide(comps: np.ndarray, evidence: Sequence[ComponentEvidence], min_voxels: int,
            spacing_zyx: Sequence[float], connect_mm: float) -> Tuple[Optional[ComponentEvidence],
                                                                       List[Tuple[ComponentEvidence, str]]]:
    """The main component and the others to drop, each with the reason."""
    main = main_component(evidence)
    if main is None or len(evidence) < 2:
        return main, []
    dist = distances_to(comps, main.index, spacing_zyx)
    drop: List[Tuple[ComponentEvidence, str]] = []
    for e in evidence:
        if e.index == main.index:
            continue
        if main.judged and main.fits and not e.fits:
            drop.append((e, "does not look like tumour"))
        elif e.voxels < min_voxels and dist[e.index] > connect_mm:
            drop.append((e, f"small and {dist[e.index]:.0f} mm from the main lesion"))
    return main, drop


def _note(what: str, main: ComponentEvidence, drop: Sequence[Tuple[ComponentEvidence, str]]) -> str:
    listed = "; ".join(f"{e.describe()} ({why})" for e, why in drop[:5])
    more = f"; and {len(drop) - 5} more" if len(drop) > 5 else ""
    return f"{what} {len(drop)} component(s): {listed}{more}; kept the main lesion ({main.describe()})"


def remove_components_by_evidence(label: np.ndarray, images: Mapping[str, np.ndarray], spacing_zyx: Sequence[float],
                                  min_voxels: int, brain_mask: Optional[np.ndarray] = None,
                                  connect_mm: float = CONNECT_MM) -> Tuple[np.ndarray, List[str]]:
    """Remove (set to 0) the whole-tumour components the rule drops; the label map and a note."""
    if min_voxels <= 1 or not label.any():
        return label, []
    found = tumour_components(images, label, spacing_zyx, brain_mask)
    return _apply(label, found, min_voxels, spacing_zyx, connect_mm, 0, "removed", "main lesion")


def relabel_et_by_evidence(label: np.ndarray, images: Mapping[str, np.ndarray], spacing_zyx: Sequence[float],
                           min_voxels: int, brain_mask: Optional[np.ndarray] = None,
                           connect_mm: float = 0.0) -> Tuple[np.ndarray, List[str]]:
    """Relabel NETC the ET components the rule drops (the main ET component is the largest that
    enhances); the label map and a note. ET specks are dropped wherever they lie (``connect_mm`` 0)."""
    if min_voxels <= 1 or not np.any(label == 3):
        return label, []
    found = et_components(images, label, spacing_zyx, brain_mask)
    return _apply(label, found, min_voxels, spacing_zyx, connect_mm, 1, "relabelled NETC", "main ET")


def _apply(label: np.ndarray, found: Tuple[np.ndarray, List[Any]], min_voxels: int, spacing_zyx: Sequence[float],
           connect_mm: float, value: int, what: str, main_name: str) -> Tuple[np.ndarray, List[str]]:
    """Set the components the rule drops to ``value``; the label map and a note (``what`` was done to them)."""
    comps, evidence = found
    main, drop = _decide(comps, evidence, min_voxels, spacing_zyx, connect_mm)
    if not drop or main is None:
        return label, []
    out = label.copy()
    out[np.isin(comps, [e.index for e, _ in drop])] = value
    return out, [_note(what, main, drop).replace("main lesion", main_name)]

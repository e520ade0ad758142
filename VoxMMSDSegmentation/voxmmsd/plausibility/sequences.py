"""Does each input look like the sequence it is said to be, of the same head? (No label map needed.)

* ``image_content`` -- an MR image has hundreds of grey values in the brain; a label map or a
  mask given as a sequence has a handful;
* ``brain_overlap`` -- every sequence covers the same brain (Dice of its non-zero voxels with the
  brain); a label map covers only the tumour, another exam a differently shaped brain;
* ``same_head`` -- the edges (ventricles, sulci, grey/white boundaries) of every sequence lie where
  the reference sequence's lie: correlation of gradient magnitudes in the normal brain; an image
  of another patient, even on the same atlas grid, correlates far less;
* ``t2w_vs_flair`` -- T2w shows cerebrospinal fluid bright where T1 shows it dark, FLAIR shows it
  dark too: in the normal brain T2w is anti-correlated with T1n, FLAIR much less; the difference
  corr(FLAIR, T1n) - corr(T2w, T1n) is negative when T2w and FLAIR are swapped.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

import numpy as np

from voxmmsd.plausibility.record import CheckResult, Limit, measured, not_applicable
from voxmmsd.plausibility.reference import INNER_MM, Reference, depth_mm

GROUP = "sequences"

LIMITS = {
    "image_content": Limit("min", doubtful=32, fail=12),
    "brain_overlap": Limit("min", doubtful=0.7, fail=0.4),
    "same_head": Limit("min", doubtful=0.3, fail=0.2),
    "t2w_vs_flair": Limit("min", doubtful=0.2, fail=0.0),
}
MEANINGS = {
    "image_content": "distinct grey values in the brain of the poorest sequence: a label map or mask has a few",
    "brain_overlap": "overlap (Dice) of each sequence's non-zero voxels with the brain: all four show the same brain",
    "same_head": "correlation of each sequence's edges with the reference sequence's: the same head, aligned",
    "t2w_vs_flair": "T2w shows CSF bright, FLAIR dark: corr(FLAIR, T1) - corr(T2w, T1) in the normal brain",
}
#: most brain voxels sampled to count grey values
_SAMPLE = 200_000


def _check(name: str, value: Optional[float], note: str = "", **details) -> CheckResult:
    return measured(name, GROUP, value, LIMITS[name], MEANINGS[name], note, **details)


def _na(name: str, why: str) -> CheckResult:
    return not_applicable(name, GROUP, LIMITS[name], MEANINGS[name], why)


def distinct_values(values: np.ndarray, limit: int = _SAMPLE) -> int:
    """Number of distinct values among (an evenly spaced sample of at most ``limit`` of) ``values``."""
    flat = values.ravel()
    if flat.size > limit:
        flat = flat[:: int(np.ceil(flat.size / limit))]
    return int(np.unique(flat).size)


def image_content(ref: Reference) -> CheckResult:
    counts = {k: distinct_values(v[ref.brain]) for k, v in ref.images.items()}
    worst = min(counts, key=counts.__getitem__)
    return _check("image_content", counts[worst], f"poorest: {worst}", per_sequence=counts)


def dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(np.count_nonzero(a)) + int(np.count_nonzero(b))
    return 1.0 if total == 0 else 2.0 * np.count_nonzero(a & b) / total


def brain_overlap(ref: Reference) -> CheckResult:
    if len(ref.images) < 2:
        return _na("brain_overlap", "one sequence only")
    scores = {k: round(dice(v != 0, ref.brain), 4) for k, v in ref.images.items()}
    worst = min(scores, key=scores.__getitem__)
    return _check("brain_overlap", scores[worst], f"poorest: {worst}", per_sequence=scores)


def gradient_magnitude(image: np.ndarray, spacing_zyx: Tuple[float, float, float]) -> np.ndarray:
    """Sobel gradient magnitude (per mm) of ``image``."""
    from scipy import ndimage

    total = np.zeros(image.shape, np.float32)
    for axis, mm in enumerate(spacing_zyx):
        g = ndimage.sobel(image, axis=axis, mode="nearest") / float(mm)
        total += g * g
    return np.sqrt(total)


def reference_sequence(ref: Reference) -> Optional[str]:
    for key in ("t1c", "t1n", "t2w", "t2f"):
        if ref.usable(key):
            return key
    return None


def same_head(ref: Reference) -> CheckResult:
    base = reference_sequence(ref)
    others = [k for k in ref.images if k != base]
    if base is None or not others:
        return _na("same_head", "fewer than two usable sequences")
    g0 = gradient_magnitude(ref.z(base), ref.spacing)
    scores = {}
    for key in others:
        if not ref.usable(key):  # a mask or constant: image_content / brain_overlap judge it
            continue
        # where both show the brain, away from the edge of either (a smaller field of view is no mismatch)
        both = (ref.images[key] != 0) & (ref.images[base] != 0)
        mask = ref.normal & (depth_mm(both, ref.spacing) > INNER_MM)
        if np.count_nonzero(mask) < 100:
            continue
        g = gradient_magnitude(ref.z(key), ref.spacing)
        c = np.corrcoef(g[mask], g0[mask])[0, 1]
        scores[key] = round(float(c), 4) if np.isfinite(c) else 0.0
    if not scores:
        return _na("same_head", "no other usable sequence")
    worst = min(scores, key=scores.__getitem__)
    return _check("same_head", scores[worst], f"poorest: {worst} against {base}", per_sequence=scores)


def t2w_vs_flair(ref: Reference) -> CheckResult:
    if not (ref.usable("t2w") and ref.usable("t2f")):
        return _na("t2w_vs_flair", "needs T2w and FLAIR")
    t1 = "t1n" if ref.usable("t1n") else ("t1c" if ref.usable("t1c") else None)
    if t1 is None:
        return _na("t2w_vs_flair", "needs T1n or T1c")
    mask = ref.normal
    if np.count_nonzero(mask) < 100:
        return _na("t2w_vs_flair", "too little normal-appearing brain")
    base = ref.z(t1)[mask]
    c_t2 = float(np.corrcoef(ref.z("t2w")[mask], base)[0, 1])
    c_fl = float(np.corrcoef(ref.z("t2f")[mask], base)[0, 1])
    if not (np.isfinite(c_t2) and np.isfinite(c_fl)):
        return _na("t2w_vs_flair", "no intensity spread")
    return _check("t2w_vs_flair", c_fl - c_t2, f"against {t1}", t2w=round(c_t2, 3), flair=round(c_fl, 3))


def sequence_checks(ref: Reference) -> List[CheckResult]:
    return [image_content(ref), brain_overlap(ref), same_head(ref), t2w_vs_flair(ref)]

"""BraTS 2023 lesion-wise Dice and HD95 of one region (binary masks).

The official BraTS 2023 procedure (BraTS-2023-Metrics), as ../docs/evaluation.md states it:

1. Reference lesions: the 26-connected components of the reference, after merging the
   components that fall into one component of the reference dilated 3 times (18-connected
   structuring element); a lesion keeps only its own reference voxels.
2. Predicted components: 26-connected components of the prediction (no size filter).
3. Each reference lesion is matched to every predicted component that touches the lesion
   dilated 3 times; its Dice and HD95 are computed against the union of those components
   (no component -> Dice 0, HD95 374 mm).
4. Lesions of at most 50 voxels are dropped from the score (their matches are not false
   positives). Predicted components that touch no reference lesion are false positives:
   Dice 0, HD95 374 mm each.
5. Score = mean over (kept lesions + false positives). Nothing to score (no kept lesion,
   no false positive) -> Dice 1, HD95 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
from scipy import ndimage

from voxmmsd.metrics.surface import MAX_DISTANCE_MM, bounding_box, hausdorff

_CONN26 = np.ones((3, 3, 3), dtype=bool)
_CONN18 = ndimage.generate_binary_structure(3, 2)


@dataclass(frozen=True)
class LesionWiseConfig:
    """Settings of the lesion-wise scores (BraTS 2023 GLI defaults)."""

    dilation_iterations: int = 3
    min_lesion_voxels: int = 50  # lesions with at most this many voxels are dropped
    max_distance: float = MAX_DISTANCE_MM
    percentile: float = 95.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Dict[str, Any]) -> "LesionWiseConfig":
        return cls(int(d.get("dilation_iterations", 3)), int(d.get("min_lesion_voxels", 50)),
                   float(d.get("max_distance", MAX_DISTANCE_MM)), float(d.get("percentile", 95.0)))


@dataclass(frozen=True)
class LesionScore:
    """One reference lesion: its size, the predicted components matched to it, and its scores."""

    lesion: int
    voxels: int
    matched: Tuple[int, ...]
    dice: float
    hd95: float
    scored: bool  # False: at most min_lesion_voxels voxels, dropped from the score


@dataclass(frozen=True)
class LesionWiseResult:
    """Lesion-wise scores of one region."""

    dice: float
    hd95: float
    n_tp: int  # scored reference lesions with at least one matched component
    n_fn: int  # scored reference lesions with none
    n_fp: int  # predicted components touching no reference lesion
    n_small: int  # reference lesions dropped for their size
    lesions: Tuple[LesionScore, ...] = field(default_factory=tuple)


def reference_lesions(ref: np.ndarray, iterations: int = 3) -> Tuple[np.ndarray, int]:
    """Reference lesions after merging by dilation.

    ``ref``: boolean ``(z, y, x)``. Returns an int32 map (0 outside, lesion ids 1..n on the
    reference voxels) and n. Every id names at least one voxel.
    """
    dilated = ndimage.binary_dilation(ref, structure=_CONN18, iterations=iterations) if iterations else ref
    groups, n = ndimage.label(dilated, structure=_CONN26)
    return np.where(ref, groups, 0).astype(np.int32), int(n)


def _merge_boxes(a: Tuple[slice, ...], b: Tuple[slice, ...]) -> Tuple[slice, ...]:
    return tuple(slice(min(x.start, y.start), max(x.stop, y.stop)) for x, y in zip(a, b))


def _grow(box: Tuple[slice, ...], margin: int, shape: Sequence[int]) -> Tuple[slice, ...]:
    return tuple(slice(max(s.start - margin, 0), min(s.stop + margin, n)) for s, n in zip(box, shape))


def lesion_wise(pred: np.ndarray, ref: np.ndarray, spacing_xyz: Sequence[float] = (1.0, 1.0, 1.0),
                config: LesionWiseConfig = LesionWiseConfig()) -> LesionWiseResult:
    """BraTS 2023 lesion-wise Dice and HD95 (mm) of boolean ``(z, y, x)`` masks ``pred``, ``ref``."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape or pred.ndim != 3:
        raise ValueError(f"need two 3-D masks of one shape, got {pred.shape} and {ref.shape}")
    it = int(config.dilation_iterations)
    box = bounding_box(pred | ref, margin=it + 1)
    if box is None:
        return LesionWiseResult(1.0, 0.0, 0, 0, 0, 0)
    # everything below happens in the box: components, dilations and distances are unchanged by the crop
    pred, ref = pred[box], ref[box]
    lesions, n_lesions = reference_lesions(ref, it)
    components, _ = ndimage.label(pred, structure=_CONN26)
    lesion_boxes = ndimage.find_objects(lesions)
    comp_boxes = ndimage.find_objects(components)

    touched: set = set()
    scores: List[LesionScore] = []
    for lesion_id in range(1, n_lesions + 1):
        lbox = lesion_boxes[lesion_id - 1]
        near = _grow(lbox, it, lesions.shape)
        own = lesions[near] == lesion_id
        reach = ndimage.binary_dilation(own, structure=_CONN18, iterations=it) if it else own
        matched = tuple(int(v) for v in np.unique(components[near][reach]) if v != 0)
        touched.update(matched)
        voxels = int(np.count_nonzero(own))
        region = lbox
        for comp in matched:
            region = _merge_boxes(region, comp_boxes[comp - 1])
        region = _grow(region, 1, lesions.shape)
        gt = lesions[region] == lesion_id
        pr = np.isin(components[region], matched) if matched else np.zeros_like(gt)
        inter = int(np.count_nonzero(gt & pr))
        d = 2.0 * inter / (voxels + int(np.count_nonzero(pr)))
        hd = hausdorff(pr, gt, spacing_xyz, config.percentile, config.max_distance)
        scores.append(LesionScore(lesion_id, voxels, matched, d, hd, voxels > config.min_lesion_voxels))

    n_fp = sum(1 for comp in range(1, len(comp_boxes) + 1) if comp not in touched)
    kept = [s for s in scores if s.scored]
    n_tp = sum(1 for s in kept if s.matched)
    denom = len(kept) + n_fp
    if denom == 0:
        dice_lw, hd_lw = 1.0, 0.0
    else:
        dice_lw = sum(s.dice for s in kept) / denom
        hd_lw = (sum(s.hd95 for s in kept) + n_fp * config.max_distance) / denom
    return LesionWiseResult(float(dice_lw), float(hd_lw), n_tp, len(kept) - n_tp, n_fp,
                            len(scores) - len(kept), tuple(scores))

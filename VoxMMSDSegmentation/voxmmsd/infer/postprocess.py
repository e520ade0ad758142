"""From class logits to a label map: argmax, tiny-component removal, label convention.

:func:`postprocess_label` is the engine's one post-processing step of a finished label map (the
predictor's, and the cross-validation that chooses its limits: ``voxmmsd experiment crossval
postprocess``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Mapping, Optional, Sequence, Tuple

import numpy as np

from voxmmsd.io.labels import BRATS2023, from_internal


def argmax_labels(logits: np.ndarray) -> np.ndarray:
    """Label map (z, y, x) uint8 = class index of the largest logit of ``logits`` (K, z, y, x)."""
    return np.argmax(logits, axis=0).astype(np.uint8)


def _small_components(mask: np.ndarray, min_voxels: int, keep_largest: bool) -> Tuple[np.ndarray, np.ndarray]:
    """The 26-connected components of ``mask`` and the indices of those under ``min_voxels``
    (never the largest one when ``keep_largest``)."""
    from scipy import ndimage

    comps, n = ndimage.label(mask, structure=np.ones((3, 3, 3), dtype=bool))
    sizes = np.bincount(comps.ravel(), minlength=n + 1)
    small = np.flatnonzero(sizes < min_voxels)
    small = small[small > 0]
    if keep_largest and n:
        small = small[small != 1 + int(np.argmax(sizes[1:]))]
    return comps, small


def remove_small_components(label: np.ndarray, min_voxels: int,
                            keep_largest: bool = False) -> Tuple[np.ndarray, int]:
    """Set to 0 every 26-connected tumour component (any label > 0) smaller than ``min_voxels``.

    With ``keep_largest`` the largest component is never removed, so a small tumour that is
    the only finding survives (the product's rule: islands go, the lesion stays).
    Returns the cleaned label map and the number of components removed.
    """
    if min_voxels <= 1 or not label.any():
        return label, 0
    comps, small = _small_components(label > 0, min_voxels, keep_largest)
    if small.size == 0:
        return label, 0
    out = label.copy()
    out[np.isin(comps, small)] = 0
    return out, int(small.size)


def min_component_voxels(min_ml: float, voxel_volume_ml: float) -> int:
    """The voxel count of ``min_ml`` millilitres (0 disables the removal)."""
    if min_ml <= 0:
        return 0
    return int(np.ceil(min_ml / voxel_volume_ml))


def to_convention(label: np.ndarray, convention: str = BRATS2023) -> np.ndarray:
    """The internal label map in ``convention`` (``brats2023`` keeps it, ``legacy`` maps ET 3 -> 4)."""
    return label if convention == BRATS2023 else from_internal(label, convention)


#: how a network's outputs read: ``classes`` (softmax, argmax) or ``regions`` (sigmoid WT, TC, ET in 1, 2, 3)
OUTPUT_KINDS = ("classes", "regions")


def regions_to_labels(scores: np.ndarray, threshold: float = 0.0) -> np.ndarray:
    """Label map (z, y, x) from region logits (K, z, y, x): channel 1 WT, 2 TC, 3 ET above ``threshold``.

    The regions nest the BraTS way: WT -> SNFH (2), TC inside WT -> NETC (1), ET inside TC -> ET (3).
    """
    wt, tc, et = scores[1] > threshold, scores[2] > threshold, scores[3] > threshold
    label = np.zeros(scores.shape[1:], np.uint8)
    label[wt] = 2
    label[wt & tc] = 1
    label[wt & tc & et] = 3
    return label


def labels_from_scores(scores: np.ndarray, output: str = "classes", tumour_bias: float = 0.0) -> np.ndarray:
    """The label map of network outputs (K, z, y, x) read as ``output`` (see :data:`OUTPUT_KINDS`).

    ``tumour_bias`` (log-odds units, chosen on cross-validation folds; 0 = plain argmax) favours tumour
    over background: ``classes`` lowers the background score by it, ``regions`` lowers the decision
    threshold of every region by it. The choice among tumour classes is unchanged.
    """
    if output == "regions":
        return regions_to_labels(scores, -float(tumour_bias))
    if tumour_bias:
        scores = scores.copy()
        scores[0] -= np.asarray(tumour_bias, dtype=scores.dtype)
    return argmax_labels(scores)


def small_et_to_netc(label: np.ndarray, min_voxels: int) -> Tuple[np.ndarray, int]:
    """If the whole predicted ET (3) is smaller than ``min_voxels``, relabel it NETC (1).

    The BraTS practice for a few scattered false-positive ET voxels (ET Dice is 0 or 1 on cases
    without ET). Returns the label map and the number of voxels relabelled.
    """
    n = int(np.count_nonzero(label == 3))
    if min_voxels <= 0 or n == 0 or n >= min_voxels:
        return label, 0
    out = label.copy()
    out[out == 3] = 1
    return out, n


def small_et_components_to_netc(label: np.ndarray, min_voxels: int) -> Tuple[np.ndarray, int]:
    """Relabel NETC (1) every 26-connected ET (3) component smaller than ``min_voxels``, the largest kept.

    Small enhancing specks around a lesion are the false positives that the BraTS 2023
    lesion-wise ET score punishes most; relabelling them NETC leaves WT and TC unchanged.
    Returns the label map and the number of components relabelled.
    """
    if min_voxels <= 1 or not np.any(label == 3):
        return label, 0
    comps, small = _small_components(label == 3, min_voxels, keep_largest=True)
    if small.size == 0:
        return label, 0
    out = label.copy()
    out[np.isin(comps, small)] = 1
    return out, int(small.size)


def confidence_map(scores: np.ndarray, output: str = "classes") -> np.ndarray:
    """Per voxel confidence in [0, 1] of the decision made from ``scores`` (K, z, y, x).

    ``classes``: the largest softmax probability, rescaled from [1/K, 1] to [0, 1]; ``regions``: the
    least certain of the three region decisions, ``min_r |2 sigmoid(z_r) - 1|``.
    """
    s = scores.astype(np.float32, copy=False)
    if output == "regions":
        p = 1.0 / (1.0 + np.exp(-np.clip(s[1:4], -30, 30)))
        return np.min(np.abs(2.0 * p - 1.0), axis=0)
    z = s - s.max(axis=0, keepdims=True)
    e = np.exp(z)
    top = 1.0 / e.sum(axis=0)  # exp(0) / sum
    k = s.shape[0]
    return np.clip((top - 1.0 / k) / (1.0 - 1.0 / k), 0.0, 1.0)


@dataclass(frozen=True)
class PostprocessLimits:
    """The post-processing limits in mL (0 = off), the package's ``inference`` keys of the same names."""

    min_et_ml: float = 0.0  # the whole predicted ET under this -> NETC
    min_et_component_ml: float = 0.0  # ET components under this (judged on the images) -> NETC
    min_component_ml: float = 0.0  # tumour components under this (judged on the images) removed


def postprocess_label(label: np.ndarray, images: Mapping[str, np.ndarray], spacing_zyx: Sequence[float],
                      voxel_volume_ml: float, limits: PostprocessLimits,
                      brain_mask: Optional[np.ndarray] = None) -> Tuple[np.ndarray, List[str]]:
    """The label map after the product's post-processing rules, in their order, and a note per change.

    1. a whole ET smaller than ``min_et_ml`` becomes NETC (:func:`small_et_to_netc`);
    2. ET components under ``min_et_component_ml`` become NETC, 3. tumour components under
       ``min_component_ml`` are removed, both judged on the ``images`` (sequence key -> (z, y, x)
       array on the label's grid) by :mod:`voxmmsd.infer.components`.
    """
    from voxmmsd.infer.components import relabel_et_by_evidence, remove_components_by_evidence

    notes: List[str] = []
    n_et = min_component_voxels(limits.min_et_ml, voxel_volume_ml)
    if n_et:
        label, relabelled = small_et_to_netc(label, n_et)
        if relabelled:
            notes.append(f"ET of {relabelled} voxel(s), under {limits.min_et_ml} mL, relabelled NETC")
    n_et_comp = min_component_voxels(limits.min_et_component_ml, voxel_volume_ml)
    if n_et_comp:
        label, found = relabel_et_by_evidence(label, images, spacing_zyx, n_et_comp, brain_mask)
        notes += [f"ET components (limit {limits.min_et_component_ml} mL): {n}" for n in found]
    n_min = min_component_voxels(limits.min_component_ml, voxel_volume_ml)
    if n_min:
        label, found = remove_components_by_evidence(label, images, spacing_zyx, n_min, brain_mask)
        notes += [f"tumour components (limit {limits.min_component_ml} mL): {n}" for n in found]
    return label, notes

"""Voxel-overlap metrics of two binary masks: Dice, sensitivity, specificity, volume error.

Empty masks follow BraTS: both empty -> Dice 1 and sensitivity 1; reference empty and
prediction not -> Dice 0 and sensitivity 0. Specificity with no negative reference voxel
(never in practice) is 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Tuple

import numpy as np


@dataclass(frozen=True)
class Confusion:
    """Voxel counts of a binary prediction against a binary reference."""

    tp: int
    fp: int
    fn: int
    tn: int

    @property
    def pred(self) -> int:
        return self.tp + self.fp

    @property
    def ref(self) -> int:
        return self.tp + self.fn


def confusion(pred: np.ndarray, ref: np.ndarray) -> Confusion:
    """Counts of ``pred`` against ``ref``, two boolean arrays of one shape (any dimension)."""
    pred = np.asarray(pred, dtype=bool)
    ref = np.asarray(ref, dtype=bool)
    if pred.shape != ref.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from reference shape {ref.shape}")
    n_pred = int(np.count_nonzero(pred))
    n_ref = int(np.count_nonzero(ref))
    tp = int(np.count_nonzero(pred & ref)) if n_pred and n_ref else 0
    fp = n_pred - tp
    fn = n_ref - tp
    return Confusion(tp, fp, fn, int(pred.size) - tp - fp - fn)


def dice(c: Confusion) -> float:
    """2 TP / (2 TP + FP + FN); 1.0 when both masks are empty."""
    denom = 2 * c.tp + c.fp + c.fn
    return 1.0 if denom == 0 else 2.0 * c.tp / denom


def sensitivity(c: Confusion) -> float:
    """TP / (TP + FN); 1.0 when both masks are empty, 0.0 when only the reference is."""
    if c.ref == 0:
        return 1.0 if c.pred == 0 else 0.0
    return c.tp / c.ref


def specificity(c: Confusion) -> float:
    """TN / (TN + FP); 1.0 when the reference has no negative voxel."""
    denom = c.tn + c.fp
    return 1.0 if denom == 0 else c.tn / denom


def volume_error(c: Confusion, voxel_volume_ml: float) -> Tuple[float, float, float, float]:
    """(predicted ml, reference ml, predicted - reference ml, relative error).

    The relative error is (predicted - reference) / reference, NaN when the reference is empty.
    """
    pred_ml = c.pred * voxel_volume_ml
    ref_ml = c.ref * voxel_volume_ml
    rel = (pred_ml - ref_ml) / ref_ml if c.ref else float("nan")
    return pred_ml, ref_ml, pred_ml - ref_ml, rel

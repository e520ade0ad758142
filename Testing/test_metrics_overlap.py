"""Overlap metrics against MONAI and against counting by hand."""

from __future__ import annotations

import numpy as np
import pytest
from support.shapes import random_pair
from voxmmsd.metrics.overlap import confusion, dice, sensitivity, specificity, volume_error


def test_dice_matches_monai_on_random_shapes():
    torch = pytest.importorskip("torch")
    from monai.metrics import compute_dice

    rng = np.random.default_rng(0)
    for _ in range(40):
        pred, ref, _ = random_pair(rng)
        ours = dice(confusion(pred, ref))
        theirs = compute_dice(torch.from_numpy(pred)[None, None].float(), torch.from_numpy(ref)[None, None].float(),
                              include_background=True).item()
        assert ours == pytest.approx(theirs, rel=1e-6)


def test_counts_sensitivity_specificity_by_hand():
    rng = np.random.default_rng(1)
    for _ in range(20):
        pred, ref, _ = random_pair(rng)
        c = confusion(pred, ref)
        tp = sum(1 for p, r in zip(pred.ravel(), ref.ravel()) if p and r)
        tn = sum(1 for p, r in zip(pred.ravel(), ref.ravel()) if not p and not r)
        assert (c.tp, c.tn, c.fp, c.fn) == (tp, tn, int(pred.sum()) - tp, int(ref.sum()) - tp)
        assert sensitivity(c) == pytest.approx(tp / ref.sum())
        assert specificity(c) == pytest.approx(tn / (~ref).sum())


def test_empty_masks_follow_brats():
    empty = np.zeros((5, 6, 7), bool)
    some = empty.copy()
    some[2, 3, 4] = True
    both = confusion(empty, empty)
    assert dice(both) == 1.0 and sensitivity(both) == 1.0 and specificity(both) == 1.0
    fp_only = confusion(some, empty)
    assert dice(fp_only) == 0.0 and sensitivity(fp_only) == 0.0 and specificity(fp_only) < 1.0
    fn_only = confusion(empty, some)
    assert dice(fn_only) == 0.0 and sensitivity(fn_only) == 0.0 and specificity(fn_only) == 1.0


def test_volume_error_in_ml():
    pred = np.zeros((10, 10, 10), bool)
    ref = pred.copy()
    pred[:2] = True  # 200 voxels
    ref[:4] = True  # 400 voxels
    p, r, diff, rel = volume_error(confusion(pred, ref), voxel_volume_ml=0.002)
    assert (p, r, diff, rel) == pytest.approx((0.4, 0.8, -0.4, -0.5))
    assert np.isnan(volume_error(confusion(pred, np.zeros_like(ref)), 0.001)[3])


def test_shape_mismatch_is_refused():
    with pytest.raises(ValueError, match="shape"):
        confusion(np.zeros((2, 2, 2), bool), np.zeros((2, 2, 3), bool))

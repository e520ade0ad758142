"""BraTS 2023 lesion-wise scores: hand-built cases, and a literal full-volume re-implementation."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from voxmmsd.metrics.lesionwise import LesionWiseConfig, lesion_wise, reference_lesions
from voxmmsd.metrics.surface import hd95

SHAPE = (40, 40, 40)


def cube(mask: np.ndarray, corner, size: int) -> np.ndarray:
    z, y, x = corner
    mask[z:z + size, y:y + size, x:x + size] = True
    return mask


def test_perfect_prediction_scores_one():
    ref = cube(cube(np.zeros(SHAPE, bool), (2, 2, 2), 5), (25, 25, 25), 6)
    r = lesion_wise(ref.copy(), ref)
    assert (r.dice, r.hd95, r.n_tp, r.n_fn, r.n_fp) == (1.0, 0.0, 2, 0, 0)


def test_missed_lesion_and_false_positive_count_374():
    ref = cube(cube(np.zeros(SHAPE, bool), (2, 2, 2), 5), (25, 25, 25), 6)
    pred = cube(np.zeros(SHAPE, bool), (2, 2, 2), 5)  # first lesion found exactly, second missed
    cube(pred, (2, 30, 2), 4)  # a false positive far from both
    r = lesion_wise(pred, ref)
    assert (r.n_tp, r.n_fn, r.n_fp) == (1, 1, 1)
    assert r.dice == pytest.approx(1.0 / 3)
    assert r.hd95 == pytest.approx((0.0 + 374.0 + 374.0) / 3)


def test_nearby_lesions_merge_far_ones_do_not():
    near = cube(cube(np.zeros(SHAPE, bool), (5, 5, 5), 5), (5, 5, 14), 5)  # gap of 4 voxels: within 2*3
    far = cube(cube(np.zeros(SHAPE, bool), (5, 5, 5), 5), (5, 5, 22), 5)  # gap of 12
    assert reference_lesions(near)[1] == 1
    assert reference_lesions(far)[1] == 2
    # predicting only one of the merged blocks: one lesion, half found
    r = lesion_wise(cube(np.zeros(SHAPE, bool), (5, 5, 5), 5), near)
    assert (r.n_tp, r.n_fn, r.n_fp) == (1, 0, 0)
    assert r.dice == pytest.approx(2 * 125 / (250 + 125))


def test_small_lesions_dropped_and_their_matches_not_false_positives():
    ref = cube(cube(np.zeros(SHAPE, bool), (2, 2, 2), 3), (20, 20, 20), 6)  # 27 voxels (dropped), 216 kept
    pred = cube(cube(np.zeros(SHAPE, bool), (2, 2, 2), 3), (20, 20, 20), 6)
    r = lesion_wise(pred, ref)
    assert (r.n_tp, r.n_fn, r.n_fp, r.n_small) == (1, 0, 0, 1)
    assert (r.dice, r.hd95) == (1.0, 0.0)
    # exactly 50 voxels is dropped, 51 kept
    fifty = np.zeros(SHAPE, bool)
    fifty[5:7, 5:10, 5:10] = True
    assert lesion_wise(np.zeros(SHAPE, bool), fifty).n_small == 1
    fifty[4, 5, 5] = True
    assert lesion_wise(np.zeros(SHAPE, bool), fifty).n_fn == 1


def test_empty_cases_follow_brats():
    empty = np.zeros(SHAPE, bool)
    some = cube(np.zeros(SHAPE, bool), (5, 5, 5), 5)
    assert (lesion_wise(empty, empty).dice, lesion_wise(empty, empty).hd95) == (1.0, 0.0)
    fp = lesion_wise(some, empty)
    assert (fp.dice, fp.hd95, fp.n_fp) == (0.0, 374.0, 1)
    fn = lesion_wise(empty, some)
    assert (fn.dice, fn.hd95, fn.n_fn) == (0.0, 374.0, 1)


def literal_lesion_wise(pred, ref, spacing, it=3, min_voxels=50, worst=374.0):
    """The official procedure step by step on the whole volume, one full-size mask per lesion."""
    conn26 = np.ones((3, 3, 3), bool)
    conn18 = ndimage.generate_binary_structure(3, 2)
    ref_cc, _ = ndimage.label(ref, conn26)
    pred_cc, n_pred = ndimage.label(pred, conn26)
    dil_cc, n_dil = ndimage.label(ndimage.binary_dilation(ref, conn18, iterations=it), conn26)
    merged = np.zeros_like(ref_cc)
    for comp in range(1, n_dil + 1):
        merged[(dil_cc == comp) & (ref_cc > 0)] = comp
    tp, rows = [], []
    for comp in range(1, n_dil + 1):
        gt = merged == comp
        hits = np.unique(pred_cc[ndimage.binary_dilation(gt, conn18, iterations=it)])
        hits = [h for h in hits if h != 0]
        tp.extend(hits)
        pr = np.isin(pred_cc, hits)
        d = 2.0 * (gt & pr).sum() / (gt.sum() + pr.sum())
        h = hd95(pr, gt, spacing, empty_distance=np.inf)
        rows.append((int(gt.sum()), d, worst if np.isinf(h) else h))
    fp = [c for c in range(1, n_pred + 1) if c not in tp]
    kept = [r for r in rows if r[0] > min_voxels]
    if not kept and not fp:
        return 1.0, 0.0, len(fp)
    n = len(kept) + len(fp)
    return sum(r[1] for r in kept) / n, (sum(r[2] for r in kept) + worst * len(fp)) / n, len(fp)


def ellipsoid(shape, centre, radii) -> np.ndarray:
    grid = np.indices(shape, dtype=float)
    return sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii)) <= 1.0


def random_lesions(rng: np.random.Generator, shape):
    """Reference: 2-6 random ellipsoids (some small, some close); prediction: about half of them,
    perturbed, plus 0-3 unrelated ellipsoids and some scattered voxels."""
    ref = np.zeros(shape, bool)
    pred = np.zeros(shape, bool)
    for _ in range(int(rng.integers(2, 7))):
        centre = rng.uniform(3, np.asarray(shape) - 3)
        radii = rng.uniform(1.0, 5.0, 3)
        ref |= ellipsoid(shape, centre, radii)
        if rng.random() < 0.55:
            pred |= ellipsoid(shape, centre + rng.normal(0, 1, 3), radii * rng.uniform(0.6, 1.4, 3))
    for _ in range(int(rng.integers(0, 4))):
        pred |= ellipsoid(shape, rng.uniform(2, np.asarray(shape) - 2), rng.uniform(0.8, 3.0, 3))
    pred |= rng.random(shape) < 0.0005
    return pred, ref


def test_matches_literal_reimplementation_on_random_shapes():
    rng = np.random.default_rng(7)
    counts = []
    for _ in range(30):
        shape = tuple(int(v) for v in rng.integers(24, 44, 3))
        spacing = tuple(float(v) for v in rng.uniform(0.7, 2.0, 3))
        pred, ref = random_lesions(rng, shape)
        r = lesion_wise(pred, ref, spacing)
        counts.append((r.n_tp, r.n_fn, r.n_fp, r.n_small))
        dice, hd, n_fp = literal_lesion_wise(pred, ref, spacing)
        assert r.dice == pytest.approx(dice, abs=1e-12)
        assert r.hd95 == pytest.approx(hd, abs=1e-9)
        assert r.n_fp == n_fp
    # the shapes exercise every branch: found, missed, false-positive and dropped lesions
    assert all(sum(c[k] for c in counts) > 5 for k in range(4)), np.sum(counts, axis=0)


def test_config_round_trip():
    cfg = LesionWiseConfig(dilation_iterations=1, min_lesion_voxels=2)
    assert LesionWiseConfig.from_dict(cfg.to_dict()) == cfg

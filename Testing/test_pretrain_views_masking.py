"""Views with a shared anchor, and SiaBloMM block masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from voxmmsd.pretrain.masking import draw_block_mask, expand_mask, expand_mask_torch, grid_shape, visible_at
from voxmmsd.pretrain.views import check_fits, overlap_box, read_crop, sample_view_pair


@pytest.mark.parametrize("shape,crop", [((40, 50, 60), (32, 32, 32)), ((32, 33, 96), (32, 16, 96)),
                                        ((100, 120, 90), (16, 16, 16))])
def test_view_pairs_fit_and_always_overlap(shape, crop):
    rng = np.random.default_rng(0)
    for _ in range(300):
        s1, s2 = sample_view_pair(rng, shape, crop)
        for s in (s1, s2):
            assert all(0 <= a and a + c <= n for a, c, n in zip(s, crop, shape))
        lo, hi = overlap_box(s1, s2, crop)
        assert np.all(hi > lo), (s1, s2)


def test_view_pairs_cover_the_whole_range_of_offsets():
    rng = np.random.default_rng(1)
    shape, crop = (64, 64, 64), (32, 32, 32)
    shifts = np.array([np.subtract(*sample_view_pair(rng, shape, crop)) for _ in range(3000)])
    # offsets between the views span almost the whole allowed range (|d| <= 31) on every axis
    assert shifts.min() <= -28 and shifts.max() >= 28
    assert np.all(np.abs(shifts) <= 31)


def test_crop_larger_than_volume_is_refused():
    with pytest.raises(ValueError, match="larger than the volume"):
        check_fits((40, 50, 60), (48, 32, 32))
    with pytest.raises(ValueError):
        sample_view_pair(np.random.default_rng(0), (40, 50, 60), (32, 64, 32))


def test_read_crop_reads_the_right_voxels():
    vol = np.arange(2 * 10 * 11 * 12).reshape(2, 10, 11, 12)
    c = read_crop(vol, (1, 2, 3), (4, 5, 6))
    assert c.shape == (2, 4, 5, 6)
    assert c[1, 0, 0, 0] == vol[1, 1, 2, 3] and c[0, 3, 4, 5] == vol[0, 4, 6, 8]


def test_mask_ratio_is_the_hidden_fraction():
    rng = np.random.default_rng(0)
    grids = np.stack([draw_block_mask(rng, 4, (96, 96, 96), 16, 0.875) for _ in range(200)])
    assert grids.shape == (200, 4, 6, 6, 6)
    hidden = 1.0 - grids.mean()
    assert abs(hidden - 0.875) < 0.01
    # sequences are masked independently: P(all four hidden) = 0.875 ** 4
    assert abs((~grids).all(axis=1).mean() - 0.875 ** 4) < 0.02
    assert draw_block_mask(rng, 4, (32, 32, 32), 16, 0.0).all()


def test_masks_differ_between_views_and_sequences():
    rng = np.random.default_rng(3)
    a = draw_block_mask(rng, 4, (64, 64, 64), 16, 0.5)
    b = draw_block_mask(rng, 4, (64, 64, 64), 16, 0.5)
    assert not np.array_equal(a, b)
    assert not np.array_equal(a[0], a[1])


def test_expanded_mask_is_constant_within_each_block():
    rng = np.random.default_rng(2)
    grid = draw_block_mask(rng, 3, (32, 48, 16), 8, 0.6)
    full = expand_mask(grid, 8)
    assert full.shape == (3, 32, 48, 16)
    blocks = full.reshape(3, 4, 8, 6, 8, 2, 8)
    assert np.all(blocks.min(axis=(2, 4, 6)) == blocks.max(axis=(2, 4, 6)))
    assert np.array_equal(blocks[:, :, 0, :, 0, :, 0], grid)
    assert np.array_equal(expand_mask_torch(torch.from_numpy(grid), 8).numpy(), full)


def test_visible_at_reads_the_block_of_a_voxel():
    grid = np.zeros((2, 2, 2, 2), dtype=bool)
    grid[1, 1, 0, 1] = True
    coords = np.array([[8, 0, 15], [8, 7, 8], [7, 0, 15], [15, 7, 8]])
    vis = visible_at(grid, coords, 8)
    assert vis.tolist() == [[False, True], [False, True], [False, False], [False, True]]


def test_grid_shape_needs_whole_blocks():
    assert grid_shape((96, 64, 32), 16) == (6, 4, 2)
    with pytest.raises(ValueError):
        grid_shape((40, 32, 32), 16)

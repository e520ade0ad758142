"""ORMS voxel pairs: inside the overlap, the same case voxel in both views, visible sequences only."""

from __future__ import annotations

import numpy as np
from voxmmsd.pretrain.masking import draw_block_mask, expand_mask
from voxmmsd.pretrain.orms import pick_visible, sample_pairs, visibility
from voxmmsd.pretrain.views import read_crop, sample_view_pair


def _case(seed: int, shape=(4, 50, 60, 56)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    img = rng.integers(1, 255, size=shape).astype(np.uint8)
    img[:, :5] = 0  # background slab
    img[2, :, :, 40:] = 0  # a sequence that is empty in part of the volume
    return img


def _draw(seed: int, crop=(32, 32, 32), block=8, ratio=0.875, n=256):
    rng = np.random.default_rng(seed)
    image = _case(seed)
    starts = sample_view_pair(rng, image.shape[1:], crop)
    views = np.stack([read_crop(image, s, crop) for s in starts])
    grids = np.stack([draw_block_mask(rng, 4, crop, block, ratio) for _ in starts])
    return image, starts, views, grids, sample_pairs(rng, views, grids, starts, crop, block, n)


def test_paired_coordinates_are_the_same_case_voxel_inside_both_views():
    for seed in range(20):
        image, starts, views, grids, pairs = _draw(seed)
        c = pairs.coords[:, pairs.valid]
        assert c.shape[1] > 0
        case1 = c[0] + np.asarray(starts[0])
        case2 = c[1] + np.asarray(starts[1])
        assert np.array_equal(case1, case2)
        assert np.all((c >= 0) & (c < 32))
        # the voxels are distinct
        assert len({tuple(v) for v in case1}) == case1.shape[0]
        # and really the same intensities in the two crops
        assert np.array_equal(views[0][:, c[0, :, 0], c[0, :, 1], c[0, :, 2]],
                              views[1][:, c[1, :, 0], c[1, :, 1], c[1, :, 2]])


def test_sampled_sequence_is_visible_in_each_view():
    for seed in range(20):
        _, _, views, grids, pairs = _draw(seed)
        c, s = pairs.coords[:, pairs.valid], pairs.sequences[:, pairs.valid]
        for v in (0, 1):
            full = expand_mask(grids[v], 8)
            unmasked = full[s[v], c[v, :, 0], c[v, :, 1], c[v, :, 2]]
            nonzero = views[v][s[v], c[v, :, 0], c[v, :, 1], c[v, :, 2]] > 0
            assert unmasked.all() and nonzero.all()


def test_pairs_fill_up_to_the_requested_number_and_pad_the_rest():
    _, _, _, _, pairs = _draw(0, n=64)
    assert pairs.valid.all() and pairs.coords.shape == (2, 64, 3)
    # everything masked: no usable pair, all padding
    rng = np.random.default_rng(0)
    image = _case(0)
    starts = sample_view_pair(rng, image.shape[1:], (32, 32, 32))
    views = np.stack([read_crop(image, s, (32, 32, 32)) for s in starts])
    grids = np.zeros((2, 4, 4, 4, 4), dtype=bool)
    none = sample_pairs(rng, views, grids, starts, (32, 32, 32), 8, 64)
    assert not none.valid.any()


def test_visibility_rule():
    view = np.ones((2, 16, 16, 16), dtype=np.uint8)
    view[0, 0, 0, 0] = 0
    grid = np.ones((2, 2, 2, 2), dtype=bool)
    grid[1, 0, 0, 0] = False
    vis = visibility(view, grid, np.array([[0, 0, 0], [1, 1, 1], [8, 8, 8]]), 8)
    assert vis.tolist() == [[False, False], [True, False], [True, True]]


def test_pick_visible_is_uniform_among_visible_sequences():
    rng = np.random.default_rng(0)
    visible = np.tile(np.array([[True, False, True, True]]), (30000, 1))
    visible[:10] = False
    pick = pick_visible(rng, visible)
    assert np.all(pick[:10] == -1)
    counts = np.bincount(pick[10:], minlength=4) / (30000 - 10)
    assert counts[1] == 0
    assert np.allclose(counts[[0, 2, 3]], 1 / 3, atol=0.015)

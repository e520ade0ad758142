"""Whole-crop and sliding-window inference, Gaussian blending, TTA and post-processing (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest
from voxmmsd.infer import window
from voxmmsd.infer.postprocess import (
    argmax_labels,
    min_component_voxels,
    remove_small_components,
    small_et_components_to_netc,
    to_convention,
)
from voxmmsd.infer.tta import mirror_axes, with_mirroring


def pointwise(x: np.ndarray) -> np.ndarray:
    """An analytic 'network': per voxel, class k's logit = channel sums weighted by (k + 1)."""
    assert x.shape[2] % 16 == 0 and x.shape[3] % 16 == 0 and x.shape[4] % 16 == 0
    s = x.sum(axis=1, keepdims=True)
    return np.concatenate([s * (k + 1) - k for k in range(3)], axis=1).astype(np.float32)


def test_whole_pads_to_16_and_cuts_back() -> None:
    img = np.random.default_rng(0).random((2, 21, 30, 17), dtype=np.float32)
    out = window.whole(img, pointwise)
    assert out.shape == (3, 21, 30, 17)
    np.testing.assert_allclose(out, _direct(img), rtol=1e-6)


def _direct(img: np.ndarray) -> np.ndarray:
    s = img.sum(axis=0, keepdims=True)
    return np.concatenate([s * (k + 1) - k for k in range(3)], axis=0)


@pytest.mark.parametrize("overlap", [0.0, 0.25, 0.5])
def test_sliding_windows_reproduce_a_pointwise_network(overlap: float) -> None:
    img = np.random.default_rng(1).random((2, 40, 50, 20), dtype=np.float32)
    seen = []
    out = window.sliding(img, pointwise, (16, 32, 16), overlap, progress=lambda i, n: seen.append((i, n)))
    assert out.shape == (3, 40, 50, 20)
    np.testing.assert_allclose(out, _direct(img), rtol=1e-5, atol=1e-5)
    assert seen[-1][0] == seen[-1][1] == len(window.plan_windows((40, 50, 20), (16, 32, 16), overlap))


def test_windows_cover_every_voxel_with_requested_overlap() -> None:
    starts = window.window_starts(100, 32, 0.5)
    assert starts[0] == 0 and starts[-1] == 100 - 32
    assert all(b - a <= 16 for a, b in zip(starts, starts[1:]))
    assert window.window_starts(20, 32, 0.5) == [0]
    wins = window.plan_windows((40, 40, 40), (32, 32, 32), 0.5)
    cover = np.zeros((40, 40, 40), int)
    for w in wins:
        cover[w] += 1
    assert cover.min() >= 1


def test_gaussian_importance_peaks_in_the_centre() -> None:
    w = window.gaussian_importance((16, 32, 16))
    assert w.shape == (16, 32, 16) and w.max() == pytest.approx(1.0) and w.min() > 0
    assert w[8, 16, 8] > w[5, 16, 8] > w[5, 12, 6] >= w[0, 0, 0]


def test_gaussian_blending_favours_window_centres() -> None:
    """A network whose output depends on position inside the window: blending weights centres most."""
    def edge_bad(x: np.ndarray) -> np.ndarray:
        out = np.zeros((1, 1) + x.shape[2:], np.float32)
        out[..., :2, :, :] = 100.0  # garbage on the window's first slices
        return out
    img = np.zeros((1, 64, 16, 16), np.float32)
    const = window.sliding(img, edge_bad, (32, 16, 16), 0.5, gaussian=False)
    gauss = window.sliding(img, edge_bad, (32, 16, 16), 0.5, gaussian=True)
    interior = (0, slice(16, 18), 8, 8)  # the start of an inner window, in the middle of the others
    assert gauss[interior].max() < const[interior].max() / 5


def test_whole_fits_and_fallbacks() -> None:
    assert window.whole_fits((17, 32, 32), None)
    assert window.whole_fits((17, 32, 32), 32 * 32 * 32)
    assert not window.whole_fits((17, 32, 32), 32 * 32 * 31)
    assert window.fallback_patches(None) == [(128, 128, 128), (96, 96, 96), (64, 64, 64), (32, 32, 32)]
    assert window.fallback_patches((96, 96, 96)) == [(64, 64, 64), (32, 32, 32)]


def test_mirroring_tta_is_exact_for_a_flip_equivariant_network_and_averages_otherwise() -> None:
    assert len(mirror_axes()) == 8
    x = np.random.default_rng(2).random((1, 2, 16, 16, 16), dtype=np.float32)
    np.testing.assert_allclose(with_mirroring(pointwise)(x), pointwise(x), rtol=1e-5)

    def ramp(a: np.ndarray) -> np.ndarray:  # not flip-equivariant: output = z index
        z = np.arange(a.shape[2], dtype=np.float32)[None, None, :, None, None]
        return np.broadcast_to(z, (1, 1) + a.shape[2:]).copy()
    out = with_mirroring(ramp)(x)
    np.testing.assert_allclose(out, np.full_like(out, 7.5))  # mean of z and 15 - z


def test_small_components_are_removed() -> None:
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[2:8, 2:8, 2:8] = 2
    lab[4:6, 4:6, 4:6] = 3
    lab[15, 15, 15] = 1  # one voxel
    lab[12:14, 17, 17] = 3  # two voxels
    out, removed = remove_small_components(lab, 5)
    assert removed == 2 and out[15, 15, 15] == 0 and out[12, 17, 17] == 0
    assert (out[2:8, 2:8, 2:8] == lab[2:8, 2:8, 2:8]).all()
    assert remove_small_components(lab, 0)[1] == 0
    assert min_component_voxels(0.05, 0.001) == 50 and min_component_voxels(0, 0.001) == 0


def test_argmax_and_label_convention() -> None:
    logits = np.zeros((4, 2, 2, 2), np.float32)
    logits[3, 0] = 1
    logits[1, 1] = 1
    lab = argmax_labels(logits)
    assert lab.dtype == np.uint8 and set(np.unique(lab)) == {1, 3}
    assert set(np.unique(to_convention(lab, "legacy"))) == {1, 4}


def test_each_torchrun_rank_takes_its_own_gpu(monkeypatch) -> None:
    from voxmmsd.infer.backends.base import gpu_for_rank
    from voxmmsd.infer.backends.onnx_backend import provider_options

    assert gpu_for_rank(4, {}) == 0  # not under torchrun
    assert [gpu_for_rank(4, {"LOCAL_RANK": str(r)}) for r in range(6)] == [0, 1, 2, 3, 0, 1]
    assert gpu_for_rank(0, {"LOCAL_RANK": "3"}) == 0  # no GPU: index unused
    assert gpu_for_rank(2, {"LOCAL_RANK": "x"}) == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    opts = provider_options(["CUDAExecutionProvider", "CPUExecutionProvider"], {"LOCAL_RANK": "3"})
    assert opts == [{"device_id": "1"}, {}]
    assert provider_options(["CPUExecutionProvider"], {"LOCAL_RANK": "3"}) == [{}]


def test_keep_largest_never_removes_the_only_or_largest_lesion() -> None:
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[2:5, 2:5, 2:5] = 3  # 27 voxels: the largest
    lab[15, 15, 15] = 2  # one voxel
    lab[10:12, 17, 17] = 1  # two voxels
    out, removed = remove_small_components(lab, 100, keep_largest=True)
    assert removed == 2 and (out[2:5, 2:5, 2:5] == 3).all() and out.sum() == 27 * 3
    alone, removed = remove_small_components(out, 100, keep_largest=True)
    assert removed == 0 and np.array_equal(alone, out)  # a small tumour that is the only finding stays
    assert remove_small_components(out, 100)[0].sum() == 0  # without the rule it would be erased


def test_small_et_specks_become_netc_and_the_main_enhancement_stays() -> None:
    lab = np.zeros((20, 20, 20), np.uint8)
    lab[2:10, 2:10, 2:10] = 2
    lab[4:7, 4:7, 4:7] = 3  # 27 voxels: the main enhancing part
    lab[8, 8, 8] = 3  # a one-voxel speck inside the oedema
    lab[15:17, 15, 15] = 3  # a two-voxel speck of its own
    out, n = small_et_components_to_netc(lab, 10)
    assert n == 2 and out[8, 8, 8] == 1 and (out[15:17, 15, 15] == 1).all()
    assert (out[4:7, 4:7, 4:7] == 3).all()
    assert np.array_equal(out > 0, lab > 0)  # WT kept
    assert np.array_equal(np.isin(out, (1, 3)), np.isin(lab, (1, 3)))  # TC kept
    only, n = small_et_components_to_netc(out, 1000)
    assert n == 0 and np.array_equal(only, out)  # the largest ET component is never relabelled
    assert small_et_components_to_netc(lab, 0)[1] == 0

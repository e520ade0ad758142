"""Region training (WT/TC/ET sigmoid outputs), their decoding, ET post-processing, simulated acquisitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from voxmmsd.finetune.data import simulate_acquisition, thick_slices
from voxmmsd.finetune.loss import region_loss, region_targets, training_loss
from voxmmsd.infer.postprocess import confidence_map, labels_from_scores, regions_to_labels, small_et_to_netc
from voxmmsd.io.labels import REGIONS


def _label(seed: int = 0, shape=(8, 10, 12)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 4, shape).astype(np.uint8)


def test_region_targets_are_the_brats_regions() -> None:
    lab = _label()
    y = region_targets(torch.from_numpy(lab.astype(np.int64))[None])[0].numpy().astype(bool)
    for i, name in enumerate(("WT", "TC", "ET")):
        assert np.array_equal(y[i], np.isin(lab, REGIONS[name])), name


def test_regions_decode_back_to_the_labels() -> None:
    lab = _label(1)
    y = region_targets(torch.from_numpy(lab.astype(np.int64))[None])[0].numpy()
    logits = np.concatenate([np.zeros((1,) + lab.shape), 8.0 * (2 * y - 1)]).astype(np.float32)
    assert np.array_equal(regions_to_labels(logits), lab)
    assert np.array_equal(labels_from_scores(logits, "regions"), lab)
    # ET outside TC is not ET: the regions nest
    odd = np.full((4, 1, 1, 1), -5.0, np.float32)
    odd[1] = odd[3] = 5.0
    assert regions_to_labels(odd).item() == 2


def test_region_loss_small_when_right_large_when_wrong() -> None:
    lab = torch.from_numpy(_label(2).astype(np.int64))[None]
    y = region_targets(lab)
    right = torch.cat([torch.zeros_like(y[:, :1]), 10 * (2 * y - 1)], 1)
    good, parts = region_loss(right, lab)
    bad, _ = region_loss(-right, lab)
    assert float(good) < 0.01 < 1.5 < float(bad)
    assert set(parts) == {"loss", "dice", "ce"}
    assert training_loss("regions") is region_loss and training_loss("dice_ce") is not region_loss


def test_region_loss_trains_a_voxel_classifier() -> None:
    torch.manual_seed(0)
    lab = torch.from_numpy(_label(3, (4, 6, 6)).astype(np.int64))[None]
    x = torch.nn.functional.one_hot(lab, 4).movedim(-1, 1).float()
    net = torch.nn.Conv3d(4, 4, 1)
    opt = torch.optim.Adam(net.parameters(), lr=0.1)
    for _ in range(150):
        opt.zero_grad()
        loss, _ = region_loss(net(x), lab)
        loss.backward()
        opt.step()
    pred = regions_to_labels(net(x)[0].detach().numpy())
    assert (pred == lab[0].numpy()).mean() > 0.95


def test_small_et_becomes_netc_only_below_the_limit() -> None:
    lab = np.zeros((10, 10, 10), np.uint8)
    lab[2:6, 2:6, 2:6] = 2
    lab[3:5, 3:5, 3:4] = 3  # 4 voxels
    out, n = small_et_to_netc(lab, 5)
    assert n == 4 and not (out == 3).any() and (out == 1).sum() == 4 and (out == 2).sum() == (lab == 2).sum()
    same, n = small_et_to_netc(lab, 4)
    assert n == 0 and np.array_equal(same, lab)


def test_confidence_is_high_for_clear_outputs_low_at_the_boundary() -> None:
    clear = np.zeros((4, 2, 2, 2), np.float32)
    clear[2] = 20.0
    assert confidence_map(clear, "classes").min() > 0.99
    assert confidence_map(np.zeros((4, 2, 2, 2), np.float32), "classes").max() < 1e-6
    reg = np.full((4, 2, 2, 2), 9.0, np.float32)
    assert confidence_map(reg, "regions").min() > 0.99
    reg[3] = 0.0  # ET undecided
    assert confidence_map(reg, "regions").max() < 1e-6


def test_thick_slices_blur_one_axis_only() -> None:
    x = np.zeros((24, 8, 8), np.float32)
    x[::2] = 1.0  # stripes along z (1 voxel)
    y = thick_slices(x, 0, 3.0)
    assert y.shape == x.shape
    assert y[4:-4].std() < 0.25 * x.std()  # stripes thinner than the slices are gone
    assert abs(float(y.mean()) - float(x.mean())) < 0.1
    z = np.zeros((8, 8, 24), np.float32)
    z[..., ::2] = 1.0
    assert np.array_equal(thick_slices(z, 0, 3.0), z)  # along x nothing changes


def test_simulated_acquisition_keeps_range_and_background() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((4, 20, 20, 20), np.float32)
    img[:, 4:16, 4:16, 4:16] = rng.random((4, 12, 12, 12)).astype(np.float32)
    same, info = simulate_acquisition(img, rng, 0.0)
    assert same is img and info == {}
    out, info = simulate_acquisition(img, rng, 1.0, spacing_mm=2.0)
    assert out.shape == img.shape and out.dtype == np.float32
    assert 3.0 <= info["thickness_mm"] <= 6.0 and info["channels"]
    assert out.min() >= 0 and out.max() <= 1 and (out[:, :4] == 0).all()
    assert not np.array_equal(out, img)


@pytest.mark.parametrize("output", ["classes", "regions"])
def test_validation_uses_the_shipped_whole_crop_path(output: str) -> None:
    from voxmmsd.finetune.validate import predict_whole
    from voxmmsd.infer import window
    from voxmmsd.nets.config import UNetConfig
    from voxmmsd.nets.unet import VoxUNet

    torch.manual_seed(0)
    model = VoxUNet(UNetConfig(channels=(2, 4, 4, 4, 4))).eval()
    img = np.zeros((4, 20, 24, 18), np.float32)
    img[:, 2:18, 3:21, 2:16] = np.random.default_rng(0).random((4, 16, 18, 14))
    got = predict_whole(model, img, output)
    with torch.no_grad():
        scores = window.whole(img, lambda x: model(torch.from_numpy(x)).numpy())
    want = labels_from_scores(scores, output)
    want[~np.any(img != 0, axis=0)] = 0
    assert got.shape == img.shape[1:] and np.array_equal(got, want)

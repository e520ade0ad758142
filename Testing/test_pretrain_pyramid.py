"""Multi-scale feature selection: level i is read at p // 2**i, for every level."""

from __future__ import annotations

import torch
from voxmmsd.nets.unet import UNetConfig, VoxUNet
from voxmmsd.pretrain.pyramid import pyramid_indices, select_from_pyramid


def _coordinate_pyramid(batch: int, size: int, levels: int = 4):
    """Level i holds channels (sample, z, y, x) of its own cells, plus a level tag."""
    out = []
    for i in range(levels):
        s = size // 2 ** i
        z, y, x = torch.meshgrid(torch.arange(s), torch.arange(s), torch.arange(s), indexing="ij")
        per = torch.stack([torch.full_like(z, 0), z, y, x, torch.full_like(z, i)]).float()
        f = per[None].repeat(batch, 1, 1, 1, 1)
        f[:, 0] = torch.arange(batch).float().view(batch, 1, 1, 1)
        out.append(f)
    return out


def test_index_arithmetic_at_every_level():
    pyr = _coordinate_pyramid(3, 32)
    g = torch.Generator().manual_seed(0)
    coords = torch.randint(0, 32, (500, 3), generator=g)
    batch = torch.randint(0, 3, (500,), generator=g)
    feats = select_from_pyramid(pyr, batch, coords)
    assert feats.shape == (500, 20)
    for level in range(4):
        part = feats[:, 5 * level: 5 * level + 5]
        assert torch.equal(part[:, 0].long(), batch)
        assert torch.equal(part[:, 1:4].long(), coords // 2 ** level)
        assert torch.all(part[:, 4] == level)
    assert torch.equal(pyramid_indices(torch.tensor([[31, 16, 15]]), 3), torch.tensor([[3, 2, 1]]))


def test_corner_voxels_map_to_corner_cells():
    pyr = _coordinate_pyramid(1, 16)
    coords = torch.tensor([[0, 0, 0], [15, 15, 15], [1, 2, 3], [7, 8, 9]])
    feats = select_from_pyramid(pyr, torch.zeros(4, dtype=torch.long), coords)
    assert feats[1, 5 * 3 + 1: 5 * 3 + 4].tolist() == [1, 1, 1]  # 15 // 8
    assert feats[3, 5 * 2 + 1: 5 * 2 + 4].tolist() == [1, 2, 2]  # (7, 8, 9) // 4


def test_unet_pyramid_gives_the_paper_width():
    net = VoxUNet(UNetConfig(channels=(4, 8, 16, 32, 64))).eval()
    with torch.no_grad():
        pyr = net.pyramid(torch.rand(2, 4, 32, 32, 32))
    assert [tuple(p.shape[1:]) for p in pyr] == [(4, 32, 32, 32), (8, 16, 16, 16), (16, 8, 8, 8), (32, 4, 4, 4)]
    feats = select_from_pyramid(pyr, torch.tensor([0, 1]), torch.tensor([[31, 0, 5], [9, 17, 30]]))
    assert feats.shape == (2, 60)
    assert torch.equal(feats[1, 4:12], pyr[1][1, :, 4, 8, 15])
    assert UNetConfig().pyramid_channels == (32, 64, 128, 256) and sum(UNetConfig().pyramid_channels) == 480

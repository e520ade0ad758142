"""The network trained by pre-training: U-Net backbone + projection head + reconstruction head."""

from __future__ import annotations

from typing import Tuple

import torch
from torch import nn

from voxmmsd.nets.unet import UNetConfig, VoxUNet
from voxmmsd.pretrain.heads import ProjectionHead, ReconstructionHead
from voxmmsd.pretrain.pyramid import select_from_pyramid


class PretrainNet(nn.Module):
    """``forward(x, batch, coords)`` -> (projected voxel features (n, out_dim), reconstruction (N, C, D, H, W)).

    The backbone's segmentation output conv is not used (and not trained) here; fine-tuning
    replaces it.
    """

    def __init__(self, network: UNetConfig, out_dim: int = 512, hidden: int = 0) -> None:
        super().__init__()
        self.backbone = VoxUNet(network)
        self.backbone.decoder.out_conv.requires_grad_(False)
        self.head = ProjectionHead(sum(network.pyramid_channels), out_dim, hidden)
        self.recon = ReconstructionHead(network.channels[0], network.in_channels)

    def forward(self, x: torch.Tensor, batch: torch.Tensor, coords: torch.Tensor,
                with_recon: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        pyramid = self.backbone.pyramid(x)
        features = select_from_pyramid(pyramid, batch, coords)
        recon = self.recon(pyramid[0]) if with_recon else pyramid[0].new_zeros(())
        return self.head(features), recon

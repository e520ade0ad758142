"""The network trained by pre-training: U-Net backbone + projection head + reconstruction head."""

from __future__ import annotations

from typing import TYPE_CHECKING, Tuple

import torch
from torch import nn

from voxmmsd.nets.unet import UNetConfig, VoxUNet
from voxmmsd.pretrain.heads import ProjectionHead, PrototypeHead, ReconstructionHead
from voxmmsd.pretrain.pyramid import select_from_pyramid

if TYPE_CHECKING:
    from voxmmsd.pretrain.config import PretrainConfig

HEADS = ("dino", "paper")


class PretrainNet(nn.Module):
    """``forward(x, batch, coords)`` -> (voxel logits (n, out_dim), reconstruction (N, C, D, H, W)).

    ``head``: ``"dino"`` (:class:`PrototypeHead`, default) or ``"paper"``
    (:class:`ProjectionHead`). The backbone's segmentation output conv is not used (and not
    trained) here; fine-tuning replaces it.
    """

    def __init__(self, network: UNetConfig, out_dim: int = 512, hidden: int = 0, head: str = "dino",
                 bottleneck: int = 256, head_bn: bool = True, logit_std: float = 0.0) -> None:
        super().__init__()
        if head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {head!r}")
        self.backbone = VoxUNet(network)
        self.backbone.decoder.out_conv.requires_grad_(False)
        width = sum(network.pyramid_channels)
        self.head: nn.Module = (PrototypeHead(width, out_dim, hidden, bottleneck, head_bn, logit_std) if head == "dino"
                                else ProjectionHead(width, out_dim, hidden))
        self.recon = ReconstructionHead(network.channels[0], network.in_channels)

    @classmethod
    def from_config(cls, cfg: "PretrainConfig") -> "PretrainNet":
        m = cfg.method
        return cls(cfg.network, m.out_dim, m.head_hidden, m.head, m.head_bottleneck, m.head_bn, m.head_logit_std)

    def forward(self, x: torch.Tensor, batch: torch.Tensor, coords: torch.Tensor,
                with_recon: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
        pyramid = self.backbone.pyramid(x)
        features = select_from_pyramid(pyramid, batch, coords)
        recon = self.recon(pyramid[0]) if with_recon else pyramid[0].new_zeros(())
        return self.head(features), recon

"""The Vox-MMSD 3-D U-Net.

Module names mirror the authors' PyMIC ``UNet3D`` so that state-dict keys match
theirs (``encoder.in_conv.conv_conv.0.weight``, ``encoder.down1.maxpool_conv.1...``,
``decoder.up1.conv1x1.weight``, ``decoder.out_conv.weight``): a checkpoint of theirs
loads here, and ours loads there.

Per level: two 3x3x3 convolutions, each followed by BatchNorm and LeakyReLU, with
dropout between them; max-pooling down; 1x1x1 convolution then trilinear up-sampling
and concatenation with the skip connection on the way up.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

import torch
from torch import nn
from torch.nn import functional as F

from voxmmsd.nets.config import UNetConfig

__all__ = ["UNetConfig", "VoxUNet", "build_unet"]


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        self.conv_conv = nn.Sequential(
            nn.Conv3d(cin, cout, kernel_size=3, padding=1),
            nn.BatchNorm3d(cout),
            nn.LeakyReLU(),
            nn.Dropout(dropout),
            nn.Conv3d(cout, cout, kernel_size=3, padding=1),
            nn.BatchNorm3d(cout),
            nn.LeakyReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_conv(x)


class DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int, dropout: float) -> None:
        super().__init__()
        self.maxpool_conv = nn.Sequential(nn.MaxPool3d(2), ConvBlock(cin, cout, dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.maxpool_conv(x)


class UpBlock(nn.Module):
    def __init__(self, cin_deep: int, cin_skip: int, cout: int, dropout: float) -> None:
        super().__init__()
        self.conv1x1 = nn.Conv3d(cin_deep, cin_skip, kernel_size=1)
        self.conv = ConvBlock(cin_skip * 2, cout, dropout)

    def forward(self, deep: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(self.conv1x1(deep), size=skip.shape[2:], mode="trilinear", align_corners=True)
        return self.conv(torch.cat([skip, up], dim=1))


class Encoder(nn.Module):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        ch, dp = cfg.channels, cfg.dropout
        self.in_conv = ConvBlock(cfg.in_channels, ch[0], dp[0])
        self.down1 = DownBlock(ch[0], ch[1], dp[1])
        self.down2 = DownBlock(ch[1], ch[2], dp[2])
        self.down3 = DownBlock(ch[2], ch[3], dp[3])
        self.down4 = DownBlock(ch[3], ch[4], dp[4])

    def forward(self, x: torch.Tensor) -> List[torch.Tensor]:
        x0 = self.in_conv(x)
        x1 = self.down1(x0)
        x2 = self.down2(x1)
        x3 = self.down3(x2)
        return [x0, x1, x2, x3, self.down4(x3)]


class Decoder(nn.Module):
    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        ch, dp = cfg.channels, cfg.dropout
        self.up1 = UpBlock(ch[4], ch[3], ch[3], dp[3])
        self.up2 = UpBlock(ch[3], ch[2], ch[2], dp[2])
        self.up3 = UpBlock(ch[2], ch[1], ch[1], dp[1])
        self.up4 = UpBlock(ch[1], ch[0], ch[0], dp[0])
        self.out_conv = nn.Conv3d(ch[0], cfg.num_classes, kernel_size=1)

    def pyramid(self, feats: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """Decoder outputs, finest first: [full, 1/2, 1/4, 1/8]."""
        x0, x1, x2, x3, x4 = feats
        d3 = self.up1(x4, x3)
        d2 = self.up2(d3, x2)
        d1 = self.up3(d2, x1)
        d0 = self.up4(d1, x0)
        return [d0, d1, d2, d3]


class VoxUNet(nn.Module):
    """The U-Net. ``forward`` gives class logits; :meth:`pyramid` the decoder's feature pyramid."""

    def __init__(self, cfg: Optional[UNetConfig] = None) -> None:
        super().__init__()
        cfg = cfg or UNetConfig()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    def pyramid(self, x: torch.Tensor) -> List[torch.Tensor]:
        """Feature pyramid ``[(N, c0, D, H, W), (N, c1, D/2, ..), (N, c2, D/4, ..), (N, c3, D/8, ..)]``."""
        return self.decoder.pyramid(self.encoder(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``(N, num_classes, D, H, W)``. D, H, W must be multiples of 16."""
        return self.decoder.out_conv(self.pyramid(x)[0])


def build_unet(cfg: Optional[UNetConfig] = None) -> VoxUNet:
    return VoxUNet(cfg)

"""Heads on top of the U-Net: the voxel projection head and the reconstruction head."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class ProjectionHead(nn.Module):
    """(n, in_dim) voxel features -> (n, out_dim) unit vectors: (Linear-BN-ReLU) x2, Linear, L2-normalise."""

    def __init__(self, in_dim: int, out_dim: int = 512, hidden: int = 0) -> None:
        super().__init__()
        hidden = hidden or in_dim
        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, hidden), nn.BatchNorm1d(hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, out_dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=-1)


class ReconstructionHead(nn.Module):
    """(N, c0, D, H, W) full-resolution decoder features -> (N, C, D, H, W) intensities in [0, 1] (sigmoid)."""

    def __init__(self, in_channels: int, out_channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))

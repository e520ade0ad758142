"""Heads on top of the U-Net: the voxel projection heads and the reconstruction head.

Two projection heads, chosen by ``PretrainConfig.head``:

- ``"dino"`` (default, :class:`PrototypeHead`): MLP (Linear-GELU x2, Linear to a
  bottleneck), L2-normalise, then cosine similarity with ``out_dim`` unit-norm prototypes.
  Each logit is a cosine in [-1, 1], independent of the others, so a voxel can be close
  to one prototype and far from the rest: the softmax over logits / tau can be sharp.
- ``"paper"`` (:class:`ProjectionHead`): the paper's Linear-BN-ReLU x2, Linear to
  ``out_dim``, L2-normalise, used directly as logits. Kept for comparison; it collapses
  (see docs/pretraining.md, "Why the distillation loss sat at ln K").
"""

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

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.mlp(x), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.embed(x)


class PrototypeHead(nn.Module):
    """(n, in_dim) voxel features -> (n, out_dim) cosine similarities with learnt unit-norm prototypes.

    ``mlp``: Linear(in, hidden)-GELU-Linear(hidden, hidden)-GELU-Linear(hidden, bottleneck),
    no normalisation layers (batch statistics of a few thousand voxels from two crops are
    neither stable nor shared by the teacher). ``prototypes``: a bias-free ``(out_dim,
    bottleneck)`` weight whose rows are normalised in every forward pass (weight
    normalisation with the gain fixed to 1), so a logit is a cosine and its scale is set
    by the temperature alone.
    """

    def __init__(self, in_dim: int, out_dim: int = 512, hidden: int = 0, bottleneck: int = 256,
                 batch_norm: bool = True, logit_std: float = 0.0) -> None:
        super().__init__()
        hidden = hidden or in_dim
        self.logit_std = float(logit_std)

        def norm() -> nn.Module:
            return nn.BatchNorm1d(hidden) if batch_norm else nn.Identity()

        self.mlp = nn.Sequential(
            nn.Linear(in_dim, hidden), norm(), nn.GELU(),
            nn.Linear(hidden, hidden), norm(), nn.GELU(),
            nn.Linear(hidden, bottleneck),
        )
        # over the step's voxels: zero mean, unit variance per bottleneck unit before L2-normalising, so the
        # embeddings cannot all point one way (the uniform collapse); no affine part (it would undo that)
        self.spread = nn.BatchNorm1d(bottleneck, affine=False) if batch_norm else nn.Identity()
        self.prototypes = nn.Parameter(torch.empty(out_dim, bottleneck))
        for m in self.mlp:
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                nn.init.zeros_(m.bias)
        with torch.no_grad():  # unit rows: the raw weight's length scales its gradient (and SGD steps) by 1/length
            self.prototypes.copy_(F.normalize(torch.randn(out_dim, bottleneck), dim=-1))

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """The L2-normalised bottleneck vectors (n, bottleneck)."""
        return F.normalize(self.spread(self.mlp(x)), dim=-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cos = F.linear(self.embed(x), F.normalize(self.prototypes, dim=-1))
        if self.logit_std <= 0:
            return cos
        # standardised over the prototypes: a voxel's outputs have mean 0 and SD logit_std, so the softmax's
        # sharpness is set by the temperature alone and the student cannot flatten its outputs to match a
        # teacher that disagrees between views: it can only change which prototypes score high
        return (cos - cos.mean(-1, keepdim=True)) / (cos.std(-1, keepdim=True) + 1e-6) * self.logit_std


class ReconstructionHead(nn.Module):
    """(N, c0, D, H, W) full-resolution decoder features -> (N, C, D, H, W) intensities in [0, 1] (sigmoid)."""

    def __init__(self, in_channels: int, out_channels: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv3d(in_channels, out_channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.conv(x))

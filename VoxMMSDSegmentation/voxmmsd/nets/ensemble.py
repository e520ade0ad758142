"""A fold ensemble: several U-Nets of one shape whose class probabilities are averaged.

The cross-validation of a recipe trains one network per fold; shipping their average (as nnU-Net
does) uses all of them. :class:`FoldEnsemble` runs the members one after another on the same input
and returns ``log(mean(softmax(member logits)))``: log-probabilities, so that an argmax, a softmax
or an ONNX export downstream treat it like any network's logits (softmax of the output gives the
averaged probabilities back). Weights are stored with the prefix ``members.<i>.``.
"""

from __future__ import annotations

from typing import Dict, List, Mapping

import torch
from torch import nn

from voxmmsd.nets.config import UNetConfig
from voxmmsd.nets.unet import VoxUNet


class FoldEnsemble(nn.Module):
    """``cfg.members`` networks of shape ``cfg.single()``; ``forward`` = log of their mean softmax."""

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.members = nn.ModuleList([VoxUNet(cfg.single()) for _ in range(cfg.members)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        total = None
        for member in self.members:
            p = torch.softmax(member(x).float(), dim=1)
            total = p if total is None else total + p
        assert total is not None
        return torch.log(total / len(self.members) + 1e-7)


def build_network(cfg: UNetConfig) -> nn.Module:
    """One :class:`VoxUNet`, or a :class:`FoldEnsemble` when ``cfg.members`` > 1."""
    return FoldEnsemble(cfg) if cfg.members > 1 else VoxUNet(cfg)


def ensemble_state(states: List[Mapping[str, torch.Tensor]]) -> Dict[str, torch.Tensor]:
    """The state dict of a :class:`FoldEnsemble` made of the member state dicts ``states`` (in order)."""
    return {f"members.{i}.{k}": v for i, st in enumerate(states) for k, v in st.items()}


def member_state(state: Mapping[str, torch.Tensor], index: int = 0) -> Dict[str, torch.Tensor]:
    """Member ``index``'s weights from an ensemble state dict (a single network's state unchanged)."""
    prefix = f"members.{index}."
    if not any(k.startswith("members.") for k in state):
        return dict(state)
    return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}

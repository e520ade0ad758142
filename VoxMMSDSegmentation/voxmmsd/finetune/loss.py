"""Segmentation loss: soft Dice over the tumour classes plus cross-entropy."""

from __future__ import annotations

from typing import Dict, Tuple

import torch
from torch.nn import functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5,
                   include_background: bool = False) -> torch.Tensor:
    """``1 - mean_k (2 |P_k T_k| + s) / (|P_k| + |T_k| + s)`` with sums over the whole batch.

    logits (N, K, D, H, W); target (N, D, H, W) integer classes in [0, K). A class absent from
    both prediction and target scores about 1; predicting an absent class is penalised.
    """
    probs = torch.softmax(logits.float(), dim=1)
    onehot = F.one_hot(target.long(), probs.shape[1]).movedim(-1, 1).to(probs.dtype)
    if not include_background:
        probs, onehot = probs[:, 1:], onehot[:, 1:]
    dims = (0, 2, 3, 4)
    inter = (probs * onehot).sum(dims)
    denom = probs.sum(dims) + onehot.sum(dims)
    return 1.0 - ((2.0 * inter + smooth) / (denom + smooth)).mean()


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor, dice_weight: float = 1.0,
                 ce_weight: float = 1.0) -> Tuple[torch.Tensor, Dict[str, float]]:
    """Weighted sum of :func:`soft_dice_loss` and voxel-mean cross-entropy; also the parts as floats."""
    dice = soft_dice_loss(logits, target)
    ce = F.cross_entropy(logits.float(), target.long())
    total = dice_weight * dice + ce_weight * ce
    return total, {"loss": float(total.detach()), "dice": float(dice.detach()), "ce": float(ce.detach())}

"""Segmentation losses: soft Dice + cross-entropy over the classes, or soft Dice + BCE over the regions."""

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


#: region outputs: channel -> internal labels (BraTS 2023) that make up the region
REGION_CHANNELS = ((1, (1, 2, 3)), (2, (1, 3)), (3, (3,)))  # WT, TC, ET


def region_targets(target: torch.Tensor) -> torch.Tensor:
    """(N, 3, D, H, W) float masks of WT, TC and ET from class labels (N, D, H, W)."""
    t = target.long()
    masks = []
    for _, labels in REGION_CHANNELS:
        m = t == labels[0]
        for v in labels[1:]:
            m = m | (t == v)
        masks.append(m)
    return torch.stack(masks, dim=1).float()


def region_loss(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1e-5) -> Tuple[torch.Tensor,
                                                                                           Dict[str, float]]:
    """Soft Dice + binary cross-entropy on the overlapping regions WT, TC, ET (channels 1, 2, 3, sigmoid).

    This is the region-based training of BraTS winners and nnU-Net's BraTS setting: each region is its
    own sigmoid output, so the loss is measured on the very regions BraTS scores. Channel 0 is unused.
    """
    z = logits.float()[:, [c for c, _ in REGION_CHANNELS]]
    y = region_targets(target)
    probs = torch.sigmoid(z)
    dims = (0, 2, 3, 4)
    inter = (probs * y).sum(dims)
    denom = probs.sum(dims) + y.sum(dims)
    dice = 1.0 - ((2.0 * inter + smooth) / (denom + smooth)).mean()
    bce = F.binary_cross_entropy_with_logits(z, y)
    total = dice + bce
    return total, {"loss": float(total.detach()), "dice": float(dice.detach()), "ce": float(bce.detach())}


def training_loss(name: str):  # -> Callable[[Tensor, Tensor], Tuple[Tensor, Dict[str, float]]]
    """The loss function of ``train.loss``: ``dice_ce`` (softmax classes) or ``regions`` (sigmoid WT/TC/ET)."""
    if name == "regions":
        return region_loss
    return dice_ce_loss

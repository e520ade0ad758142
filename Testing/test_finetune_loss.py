"""Dice + cross-entropy against MONAI's independent implementation."""

from __future__ import annotations

import pytest
import torch
from monai.losses import DiceCELoss
from voxmmsd.finetune.loss import dice_ce_loss, soft_dice_loss


@pytest.mark.parametrize("seed", range(4))
def test_matches_monai(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 4, 8, 6, 10, generator=g) * (1 + seed)
    target = torch.randint(0, 4, (2, 8, 6, 10), generator=g)
    if seed == 3:
        target[target == 3] = 0  # a class absent from the target
    ref = DiceCELoss(include_background=False, to_onehot_y=True, softmax=True, batch=True, smooth_nr=1e-5,
                     smooth_dr=1e-5)(logits, target[:, None])
    total, parts = dice_ce_loss(logits, target)
    assert torch.allclose(total, ref, atol=1e-5)
    assert parts["loss"] == pytest.approx(parts["dice"] + parts["ce"], rel=1e-5)


def test_confident_correct_prediction_scores_near_zero() -> None:
    target = torch.randint(0, 4, (1, 8, 8, 8))
    logits = torch.nn.functional.one_hot(target, 4).movedim(-1, 1).float() * 30
    assert soft_dice_loss(logits, target) < 1e-4
    assert soft_dice_loss(-logits, target) > 0.99
    total, _ = dice_ce_loss(logits.requires_grad_(), target)
    total.backward()

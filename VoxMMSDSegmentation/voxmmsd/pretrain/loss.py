"""Losses: DINO-style voxel self-distillation with a centred, sharpened teacher; masked L1 reconstruction."""

from __future__ import annotations

from typing import Callable, Optional

import torch
from torch import nn
from torch.nn import functional as F


def cross_view_distillation(student: torch.Tensor, teacher: torch.Tensor, center: torch.Tensor,
                            student_temp: float, teacher_temp: float) -> torch.Tensor:
    """Mean cross-entropy between teacher and student over voxel pairs, both directions.

    ``student``, ``teacher``: ``(2, n, K)`` outputs for the same n voxels in view 1 and view 2;
    ``center`` ``(K,)`` or ``(1, K)``. The student's view v is matched to the teacher's other view.
    """
    if student.shape[1] == 0:
        return student.sum() * 0.0
    t = F.softmax((teacher.float() - center) / teacher_temp, dim=-1).detach()
    s = F.log_softmax(student.float() / student_temp, dim=-1)
    return 0.5 * (-(t[1] * s[0]).sum(-1).mean() - (t[0] * s[1]).sum(-1).mean())


class DistillationLoss(nn.Module):
    """:func:`cross_view_distillation` with the teacher centre as a checkpointed buffer (EMA of teacher outputs)."""

    center: torch.Tensor
    initialized: torch.Tensor

    def __init__(self, out_dim: int, center_momentum: float = 0.9) -> None:
        super().__init__()
        self.center_momentum = center_momentum
        self.register_buffer("center", torch.zeros(1, out_dim))
        # 0 until the first update, which sets the centre to the first batch mean (no warm-up drift from zero)
        self.register_buffer("initialized", torch.zeros((), dtype=torch.long))

    def forward(self, student: torch.Tensor, teacher: torch.Tensor, student_temp: float,
                teacher_temp: float) -> torch.Tensor:
        return cross_view_distillation(student, teacher, self.center, student_temp, teacher_temp)

    @torch.no_grad()
    def update_center(self, teacher: torch.Tensor,
                      reduce: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> None:
        """EMA of the mean teacher output; ``reduce`` averages the batch mean across processes (DDP).

        The first update sets the centre to the batch mean (DINO starts from zero, which makes
        the loss climb for tens of iterations while the centre catches up).
        """
        flat = teacher.detach().float().reshape(-1, teacher.shape[-1])
        if flat.shape[0] == 0:
            return
        mean = flat.mean(dim=0, keepdim=True)
        if reduce is not None:
            mean = reduce(mean)
        m = self.center_momentum * self.initialized.to(mean.dtype)  # 0 on the first update
        self.center.mul_(m).add_(mean * (1.0 - m))
        self.initialized.fill_(1)


def masked_l1(prediction: torch.Tensor, target: torch.Tensor, weight: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Mean absolute error over the entries where ``weight`` (same shape, bool or 0/1) is set; all if None."""
    err = (prediction.float() - target.float()).abs()
    if weight is None:
        return err.mean()
    w = weight.to(err.dtype)
    return (err * w).sum() / w.sum().clamp_min(1.0)

"""The EMA teacher: a frozen copy of the student (backbone and heads), updated by exponential moving average."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

TEACHER_BN = ("batch", "running")


def set_teacher_mode(teacher: nn.Module, bn: str = "batch") -> nn.Module:
    """Eval mode (no dropout); with ``bn="batch"`` the BatchNorm layers normalise by the batch's statistics.

    ``"batch"`` (default, as in DINO/BYOL): each teacher layer is normalised with the
    statistics of its own activations on this batch. ``"running"``: the running statistics,
    which :func:`ema_update` copies from the student - they describe the *student's*
    activations, not those of the EMA-averaged teacher weights, and lag them.
    """
    if bn not in TEACHER_BN:
        raise ValueError(f"teacher BatchNorm mode must be one of {TEACHER_BN}, got {bn!r}")
    teacher.eval()
    if bn == "batch":
        for m in teacher.modules():
            if isinstance(m, _BatchNorm):
                m.train()
    return teacher


def make_teacher(student: nn.Module, bn: str = "batch") -> nn.Module:
    """A deep copy of ``student`` without gradients, in :func:`set_teacher_mode` ``bn`` mode."""
    teacher = copy.deepcopy(student)
    for p in teacher.parameters():
        p.requires_grad_(False)
    return set_teacher_mode(teacher, bn)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher = momentum * teacher + (1 - momentum) * student`` for every parameter.

    Buffers (BatchNorm running statistics) are copied from the student: they are used by a
    ``"running"``-mode teacher and by the exported backbone (an EMA of them would lag far
    behind the weights early in training).
    """
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
    for tb, sb in zip(teacher.buffers(), student.buffers()):
        tb.copy_(sb)

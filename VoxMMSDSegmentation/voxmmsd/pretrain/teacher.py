"""The EMA teacher: a frozen copy of the student (backbone and heads), updated by exponential moving average."""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_teacher(student: nn.Module) -> nn.Module:
    """A deep copy of ``student`` in eval mode (no dropout, running BatchNorm statistics), without gradients."""
    teacher = copy.deepcopy(student)
    teacher.eval()
    for p in teacher.parameters():
        p.requires_grad_(False)
    return teacher


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float) -> None:
    """``teacher = momentum * teacher + (1 - momentum) * student`` for every parameter.

    Buffers (BatchNorm running statistics) are copied from the student: the teacher runs
    in eval mode with running statistics, and an EMA of them would lag far behind the
    weights early in training.
    """
    for t, s in zip(teacher.parameters(), student.parameters()):
        t.mul_(momentum).add_(s.detach(), alpha=1.0 - momentum)
    for t, s in zip(teacher.buffers(), student.buffers()):
        t.copy_(s)

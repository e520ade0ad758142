"""Optimiser and per-iteration schedules (learning rate, weight decay, EMA momentum, teacher temperature).

The prototypes of the ``dino`` head have their own parameter group, whose learning rate is
0 for the first ``freeze_prototypes`` fraction of the run (DINO freezes its last layer for
the first epoch): while the network's features are still random, the quickest way for the
student to match a teacher that disagrees between the views is to pull the prototypes
together, which flattens every output (the uniform collapse). Frozen, the prototypes stay
spread and the features must move instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List

import numpy as np
import torch
from torch import nn

from voxmmsd.jobs.schedules import cosine_schedule, linear_then_constant, warmup_steps
from voxmmsd.pretrain.config import PretrainConfig


@dataclass(frozen=True)
class Schedules:
    """Arrays of length ``iterations``, indexed by the global iteration (0-based)."""

    lr: np.ndarray
    weight_decay: np.ndarray
    ema: np.ndarray
    teacher_temp: np.ndarray
    prototype_lr: np.ndarray

    def at(self, it: int) -> Dict[str, float]:
        return {"lr": float(self.lr[it]), "weight_decay": float(self.weight_decay[it]),
                "ema": float(self.ema[it]), "teacher_temp": float(self.teacher_temp[it]),
                "prototype_lr": float(self.prototype_lr[it])}


def make_schedules(cfg: PretrainConfig) -> Schedules:
    t, n = cfg.train, cfg.train.iterations
    lr = cosine_schedule(t.lr, t.lr_end, n, warmup=warmup_steps(t.lr_warmup, n), warmup_start=0.0)
    frozen = np.arange(n) < int(round(cfg.method.freeze_prototypes * n))
    return Schedules(
        lr=lr,
        weight_decay=cosine_schedule(cfg.train.weight_decay, cfg.train.weight_decay_end, n),
        ema=cosine_schedule(cfg.method.ema_momentum, cfg.method.ema_momentum_end, n),
        teacher_temp=linear_then_constant(cfg.method.teacher_temp, cfg.method.teacher_temp_end, n,
                                          int(round(cfg.method.teacher_temp_warmup * n))),
        prototype_lr=np.where(frozen, 0.0, lr),
    )


PROTOTYPES = "head.prototypes"


def param_groups(model: nn.Module) -> List[Dict[str, object]]:
    """Trainable parameters: weights (decayed), biases / norm parameters (not decayed), the head's prototypes.

    The prototypes (rows normalised in the forward pass, so weight decay would only change
    their length) are not decayed and get ``prototype_lr``.
    """
    decay: List[nn.Parameter] = []
    no_decay: List[nn.Parameter] = []
    protos: List[nn.Parameter] = []
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        if name == PROTOTYPES:
            protos.append(p)
        else:
            (no_decay if p.ndim <= 1 else decay).append(p)
    groups: List[Dict[str, object]] = [{"params": decay, "decay": True},
                                       {"params": no_decay, "decay": False, "weight_decay": 0.0}]
    if protos:
        groups.append({"params": protos, "decay": False, "weight_decay": 0.0, "prototypes": True})
    return groups


def make_optimizer(model: nn.Module, cfg: PretrainConfig) -> torch.optim.Optimizer:
    groups = param_groups(model)
    if cfg.train.optimizer == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
    return torch.optim.SGD(groups, lr=cfg.train.lr, momentum=cfg.train.momentum, weight_decay=cfg.train.weight_decay)


def apply_schedules(optimizer: torch.optim.Optimizer, values: Dict[str, float]) -> None:
    for group in optimizer.param_groups:
        group["lr"] = values["prototype_lr"] if group.get("prototypes") else values["lr"]
        if group.get("decay"):
            group["weight_decay"] = values["weight_decay"]

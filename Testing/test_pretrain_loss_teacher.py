"""DINO loss with its centre, reconstruction loss, EMA teacher, per-iteration schedules, heads."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn
from voxmmsd.nets.unet import UNetConfig
from voxmmsd.pretrain.config import PretrainConfig
from voxmmsd.pretrain.heads import ProjectionHead, ReconstructionHead
from voxmmsd.pretrain.loss import DistillationLoss, cross_view_distillation, masked_l1
from voxmmsd.pretrain.model import PretrainNet
from voxmmsd.pretrain.optim import make_optimizer, make_schedules, param_groups
from voxmmsd.pretrain.teacher import ema_update, make_teacher


def test_cross_view_distillation_by_hand():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 7, generator=g), torch.randn(2, 5, 7, generator=g)
    center = torch.randn(1, 7, generator=g)
    got = cross_view_distillation(s, t, center, 0.1, 0.04)
    want = 0.0
    for a, b in ((0, 1), (1, 0)):
        for i in range(5):
            pt = torch.softmax((t[b, i] - center[0]) / 0.04, 0)
            ls = torch.log_softmax(s[a, i] / 0.1, 0)
            want += -(pt * ls).sum().item() / 10
    assert math.isclose(got.item(), want, rel_tol=1e-5)
    # the student gets gradients, the teacher none
    s.requires_grad_(True)
    t.requires_grad_(True)
    cross_view_distillation(s, t, center, 0.1, 0.04).backward()
    assert s.grad is not None and t.grad is None


def test_loss_is_lowest_when_student_matches_teacher_across_views():
    t = torch.randn(2, 8, 16)
    center = torch.zeros(1, 16)
    matched = cross_view_distillation(t.flip(0) * 0.4, t, center, 0.1, 0.04)
    other = cross_view_distillation(torch.randn(2, 8, 16), t, center, 0.1, 0.04)
    assert matched < other


def test_center_starts_at_the_first_mean_then_moves_by_ema():
    loss = DistillationLoss(4, center_momentum=0.9)
    a = torch.tensor([[[1.0, 0, 0, 0]], [[3.0, 0, 0, 0]]])
    loss.update_center(a)
    assert torch.allclose(loss.center, torch.tensor([[2.0, 0, 0, 0]]))
    loss.update_center(torch.zeros(2, 1, 4))
    assert torch.allclose(loss.center, torch.tensor([[1.8, 0, 0, 0]]))
    assert set(loss.state_dict()) == {"center", "initialized"}  # checkpointed


def test_masked_l1():
    p, t = torch.zeros(1, 2, 2), torch.tensor([[[1.0, 2.0], [3.0, 4.0]]])
    w = torch.tensor([[[True, False], [False, True]]])
    assert masked_l1(p, t, w).item() == 2.5
    assert masked_l1(p, t).item() == 2.5
    assert masked_l1(p, t, torch.zeros_like(w)).item() == 0.0


def test_teacher_is_a_frozen_eval_copy_and_follows_the_student_by_ema():
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    teacher = make_teacher(student)
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    x = torch.randn(6, 3)
    assert torch.equal(teacher(x), teacher(x))  # no dropout, running statistics
    before = teacher[0].weight.clone()
    with torch.no_grad():
        student[0].weight.add_(1.0)
    student.train()
    student(x)  # moves the student's running statistics
    ema_update(teacher, student, 0.9)
    assert torch.allclose(teacher[0].weight, 0.9 * before + 0.1 * student[0].weight)
    assert torch.equal(teacher[1].running_mean, student[1].running_mean)
    ema_update(teacher, student, 1.0)  # momentum 1: frozen
    assert torch.allclose(teacher[0].weight, 0.9 * before + 0.1 * student[0].weight)


def test_schedules_are_per_iteration():
    cfg = PretrainConfig.from_dict({"train": {"iterations": 1000, "lr_warmup": 0.05},
                                   "method": {"teacher_temp_warmup": 0.1, "teacher_temp_end": 0.07}})
    s = make_schedules(cfg)
    assert len(s.lr) == len(s.ema) == len(s.teacher_temp) == len(s.weight_decay) == 1000
    assert s.lr[0] == 0.0 and math.isclose(s.lr[50], 1e-3) and math.isclose(s.lr[-1], 1e-4)
    assert np.all(np.diff(s.lr[:50]) > 0) and np.all(np.diff(s.lr[50:]) <= 1e-15)
    assert math.isclose(s.ema[0], 0.996) and math.isclose(s.ema[-1], 1.0)
    assert math.isclose(s.teacher_temp[0], 0.04) and math.isclose(s.teacher_temp[100], 0.07)
    assert np.all(np.diff(s.teacher_temp[:100]) > 0) and np.all(s.teacher_temp[100:] == 0.07)
    assert math.isclose(s.weight_decay[0], 1e-5) and math.isclose(s.weight_decay[-1], 1e-4)
    # changes every iteration (not once per 200), and the last index exists
    assert len(set(np.round(s.lr[100:300], 12))) == 200 and s.at(999)["ema"] == 1.0


def test_every_trainable_part_is_in_the_optimizer():
    net = PretrainNet(UNetConfig(channels=(4, 8, 16, 32, 64)), out_dim=32)
    opt = make_optimizer(net, PretrainConfig())
    in_opt = {id(p) for g in opt.param_groups for p in g["params"]}
    trainable = {id(p) for p in net.parameters() if p.requires_grad}
    assert in_opt == trainable
    assert all(id(p) in in_opt for p in net.head.parameters()) and all(id(p) in in_opt for p in net.recon.parameters())
    assert not any(id(p) in in_opt for p in net.backbone.decoder.out_conv.parameters())
    groups = param_groups(net)
    assert all(p.ndim > 1 for p in groups[0]["params"]) and all(p.ndim <= 1 for p in groups[1]["params"])


def test_heads():
    head = ProjectionHead(60, 32)
    out = head(torch.randn(10, 60))
    assert out.shape == (10, 32) and torch.allclose(out.norm(dim=1), torch.ones(10), atol=1e-5)
    rec = ReconstructionHead(4)(torch.randn(1, 4, 8, 8, 8))
    assert rec.shape == (1, 4, 8, 8, 8) and rec.min() >= 0 and rec.max() <= 1

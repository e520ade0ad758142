"""Projection heads, the distillation loss on hand-made inputs, the diagnostics and the collapse check."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn
from voxmmsd.nets.unet import UNetConfig
from voxmmsd.pretrain.config import load_config
from voxmmsd.pretrain.heads import ProjectionHead, PrototypeHead
from voxmmsd.pretrain.loss import cross_view_distillation
from voxmmsd.pretrain.model import PretrainNet
from voxmmsd.pretrain.monitor import CollapseMonitor, distillation_diagnostics, mean_pairwise_cosine
from voxmmsd.pretrain.teacher import make_teacher, set_teacher_mode


@pytest.mark.parametrize("batch_norm", [True, False])
def test_prototype_head_outputs_cosines_with_unit_prototypes(batch_norm):
    torch.manual_seed(0)
    head = PrototypeHead(12, out_dim=7, hidden=16, bottleneck=5, batch_norm=batch_norm)
    x = torch.randn(9, 12)
    out = head(x)
    assert out.shape == (9, 7)
    z = head.embed(x)
    assert torch.allclose(z.norm(dim=1), torch.ones(9), atol=1e-5)
    w = head.prototypes.detach()
    want = z @ (w / w.norm(dim=1, keepdim=True)).T
    assert torch.allclose(out, want, atol=1e-6)
    assert out.abs().max() <= 1.0 + 1e-6
    # the prototypes' lengths do not matter (weight normalisation, gain 1)
    with torch.no_grad():
        head.prototypes.mul_(torch.arange(1, 8, dtype=torch.float32)[:, None])
    assert torch.allclose(head(x), out, atol=1e-6)
    # an embedding equal to a prototype has logit 1 for it
    with torch.no_grad():
        head.prototypes[3] = z[0] * 5.0
    assert math.isclose(head(x)[0, 3].item(), 1.0, rel_tol=1e-5)
    # every parameter is trained
    head(x).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())


def test_paper_head_is_unit_length_and_model_picks_the_head():
    head = ProjectionHead(6, out_dim=10)
    assert torch.allclose(head(torch.randn(4, 6)).norm(dim=1), torch.ones(4), atol=1e-5)
    net = UNetConfig(channels=(4, 8, 16, 32, 64))
    assert isinstance(PretrainNet(net, 10, head="dino").head, PrototypeHead)
    assert isinstance(PretrainNet(net, 10, head="paper").head, ProjectionHead)
    cfg = load_config(None, ["network.channels=4,8,16,32,64", "method.out_dim=24", "method.head_bottleneck=8",
                             "method.head_bn=false"])
    model = PretrainNet.from_config(cfg)
    assert model.head.prototypes.shape == (24, 8)
    assert not any(isinstance(m, nn.BatchNorm1d) for m in model.head.modules())


def test_uniform_inputs_give_ln_k():
    k = 64
    for value in (0.0, 0.3):
        s = torch.full((2, 5, k), value)
        t = torch.full((2, 5, k), -value)
        loss = cross_view_distillation(s, t, torch.zeros(1, k), 0.1, 0.04)
        assert math.isclose(loss.item(), math.log(k), rel_tol=1e-6)
        d = distillation_diagnostics(s, t, torch.zeros(1, k), 0.1, 0.04)
        assert math.isclose(d["teacher_entropy"], math.log(k), rel_tol=1e-6)
        assert math.isclose(d["student_entropy"], math.log(k), rel_tol=1e-6)
        assert abs(d["kl"]) < 1e-6


def test_one_hot_teacher_gives_the_students_cross_entropy():
    g = torch.Generator().manual_seed(1)
    k, n = 16, 6
    target = torch.randint(0, k, (2, n), generator=g)
    t = torch.nn.functional.one_hot(target, k).float()  # logits 1 at the target, 0 elsewhere
    s = torch.randn(2, n, k, generator=g)
    loss = cross_view_distillation(s, t, torch.zeros(1, k), 0.1, 1e-3)  # tau_t -> 0: a one-hot teacher
    want = 0.0
    for v in (0, 1):  # student view v against the teacher's other view
        log_s = torch.log_softmax(s[v] / 0.1, dim=-1)
        want += -log_s[torch.arange(n), target[1 - v]].mean().item() / 2
    assert math.isclose(loss.item(), want, rel_tol=1e-5)
    d = distillation_diagnostics(s, t, torch.zeros(1, k), 0.1, 1e-3)
    assert d["teacher_entropy"] < 1e-6
    assert math.isclose(d["kl"], want, rel_tol=1e-4)  # KL = cross-entropy when the teacher's entropy is 0


def test_diagnostics_kl_equals_loss_minus_teacher_entropy_and_center():
    g = torch.Generator().manual_seed(2)
    s, t, c = torch.randn(2, 7, 9, generator=g), torch.randn(2, 7, 9, generator=g), torch.randn(1, 9, generator=g)
    d = distillation_diagnostics(s, t, c, 0.1, 0.07)
    loss = cross_view_distillation(s, t, c, 0.1, 0.07).item()
    assert math.isclose(d["kl"], loss - d["teacher_entropy"], rel_tol=1e-4)
    assert math.isclose(d["center_norm"], c.norm().item(), rel_tol=1e-6)
    assert 0 < d["teacher_entropy"] < math.log(9) and 0 < d["student_entropy"] < math.log(9)
    empty = distillation_diagnostics(s[:, :0], t[:, :0], c, 0.1, 0.07)
    assert math.isnan(empty["teacher_entropy"]) and math.isclose(empty["center_norm"], c.norm().item(), rel_tol=1e-6)


def test_mean_pairwise_cosine():
    same = torch.tensor([[1.0, 2.0], [2.0, 4.0], [0.5, 1.0]])
    assert math.isclose(mean_pairwise_cosine(same).item(), 1.0, rel_tol=1e-6)
    assert abs(mean_pairwise_cosine(torch.eye(4)).item()) < 1e-7
    x = torch.randn(10, 3)
    u = torch.nn.functional.normalize(x, dim=1)
    c = u @ u.T
    want = (c.sum() - c.diagonal().sum()) / 90
    assert math.isclose(mean_pairwise_cosine(x).item(), want.item(), rel_tol=1e-5, abs_tol=1e-6)


def _diag(entropy: float, cosine: float = 0.1) -> dict:
    return {"teacher_entropy": entropy, "student_entropy": entropy, "kl": 0.0, "voxel_cosine": cosine,
            "center_norm": 1.0}


def test_collapse_monitor_warns_once_after_warmup_and_rearms():
    ln_k = math.log(64)
    mon = CollapseMonitor(64, warmup=30, window=3)
    msgs = [mon.update(it, _diag(ln_k * 0.999)) for it in range(10, 60, 10)]
    assert msgs[:2] == [None, None]  # warm-up
    assert msgs[2] is not None and "uniform" in msgs[2] and "iteration 30" in msgs[2]
    assert msgs[3:] == [None, None]  # once
    for it in range(60, 90, 10):  # healthy again: re-arms
        assert mon.update(it, _diag(ln_k * 0.5)) is None
    assert [mon.update(it, _diag(ln_k)) for it in (90, 100, 110)][-1] is not None
    healthy = CollapseMonitor(64, warmup=0, window=3)
    assert all(healthy.update(it, _diag(ln_k * 0.97)) is None for it in range(10))
    onehot = CollapseMonitor(64, warmup=0, window=1)
    assert "same output" in onehot.update(1, _diag(0.001, cosine=0.999))
    assert CollapseMonitor(64, 0, 1).update(1, _diag(0.001, cosine=0.5)) is None  # sharp but diverse


def test_teacher_batchnorm_modes():
    student = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Dropout(0.5))
    x = torch.randn(8, 3) * 5 + 3
    batch = make_teacher(student)  # default: batch statistics, no dropout
    assert not batch[2].training and batch[1].training and not any(p.requires_grad for p in batch.parameters())
    with torch.no_grad():
        y = batch(x)
    assert torch.allclose(y.mean(0), torch.zeros(4), atol=1e-5)  # normalised by this batch
    assert torch.equal(y, batch(x).detach())  # deterministic: no dropout
    running = make_teacher(student, "running")
    assert not running[1].training  # running statistics (mean 0, var 1 at init): not centred
    with torch.no_grad():
        assert not torch.allclose(running(x).mean(0), torch.zeros(4), atol=1e-2)
    set_teacher_mode(running, "batch")
    assert running[1].training and not running[2].training
    with pytest.raises(ValueError):
        set_teacher_mode(running, "train")

"""One pre-training step's forward pass: views from a batch of pairs, student and teacher, losses.

A batch from :class:`~voxmmsd.pretrain.dataset.PairDataset` holds N pairs; the network
sees the 2N views at once, ordered view-major (view 1 of every pair, then view 2).
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

import torch
from torch import nn

from voxmmsd.pretrain.augment import apply_intensity
from voxmmsd.pretrain.config import PretrainConfig
from voxmmsd.pretrain.loss import DistillationLoss, masked_l1
from voxmmsd.pretrain.masking import expand_mask_torch
from voxmmsd.pretrain.monitor import distillation_diagnostics


def _view_major(t: torch.Tensor) -> torch.Tensor:
    """(N, 2, ...) -> (2N, ...), view 1 of every pair first."""
    return t.transpose(0, 1).reshape((-1,) + tuple(t.shape[2:]))


def build_views(batch: Dict[str, torch.Tensor], block: int,
                device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Network input (masked, augmented), reconstruction target and visibility, each ``(2N, C, D, H, W)``."""
    target = _view_major(batch["views"].to(device, non_blocking=True)).float().div_(255.0)
    visible = expand_mask_torch(_view_major(batch["grids"].to(device, non_blocking=True)), block)
    params = _view_major(batch["params"])
    seeds = [int(s) for s in _view_major(batch["seeds"]).tolist()]
    inputs = apply_intensity(target * visible, params, seeds)
    return inputs, target, visible


def pair_indices(batch: Dict[str, torch.Tensor], device: torch.device) -> Tuple[torch.Tensor, torch.Tensor, int]:
    """Sample indices (2M,) and coordinates (2M, 3) of the M valid pairs, view 1's first; and M.

    When fewer than two pairs exist (BatchNorm needs two), two placeholder voxels are used and M is 0.
    """
    valid = batch["valid"]
    n_idx, p_idx = torch.nonzero(valid, as_tuple=True)
    n = valid.shape[0]
    m = int(n_idx.numel())
    if m < 2:
        n_idx = torch.zeros(2, dtype=torch.long)
        p_idx = torch.zeros(2, dtype=torch.long)
    coords = batch["coords"]  # (N, 2, P, 3)
    b = torch.cat([n_idx, n_idx + n])
    c = torch.cat([coords[n_idx, 0, p_idx], coords[n_idx, 1, p_idx]])
    return b.to(device), c.to(device), (m if m >= 2 else 0)


def compute_losses(student: nn.Module, teacher: nn.Module, loss_fn: DistillationLoss, batch: Dict[str, torch.Tensor],
                   cfg: PretrainConfig, teacher_temp: float, device: torch.device,
                   amp_dtype: Optional[torch.dtype] = None,
                   ) -> Tuple[torch.Tensor, Dict[str, Any], torch.Tensor]:
    """(total loss, parts, teacher outputs (2, M, K) for the centre update).

    ``parts``: ``"distill"``, ``"recon"`` (detached tensors) and ``"diagnostics"`` (floats,
    :func:`~voxmmsd.pretrain.monitor.distillation_diagnostics` against the centre before its update).
    """
    inputs, target, visible = build_views(batch, cfg.method.block_size, device)
    if cfg.train.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last_3d)
    b, c, m = pair_indices(batch, device)
    with torch.autocast(device.type, dtype=amp_dtype or torch.float32, enabled=amp_dtype is not None):
        s_out, recon = student(inputs, b, c)
        with torch.no_grad():
            t_out, _ = teacher(inputs, b, c, with_recon=False)
    k = s_out.shape[-1]
    s_out = s_out.float().reshape(2, -1, k)[:, :m]
    t_out = t_out.float().reshape(2, -1, k)[:, :m]
    distill = loss_fn(s_out, t_out, cfg.method.student_temp, teacher_temp)
    if m == 0:  # keep every head parameter in the graph (DDP) without a signal
        distill = distill + 0.0 * s_out.sum()
    weight = None
    if cfg.method.recon_voxels == "masked":
        brain = (target > 0).any(dim=1, keepdim=True)
        weight = (~visible) & brain
    recon_loss = masked_l1(recon.float(), target, weight)
    total = cfg.method.distill_weight * distill + cfg.method.recon_weight * recon_loss
    diagnostics = distillation_diagnostics(s_out.detach(), t_out.detach(), loss_fn.center, cfg.method.student_temp,
                                           teacher_temp)
    return total, {"distill": distill.detach(), "recon": recon_loss.detach(), "diagnostics": diagnostics}, \
        t_out.detach()

"""Validation during fine-tuning: sliding-window prediction of whole cases, Dice per region.

Validation runs on the preprocessed grid of the cache (cropped, resampled); the
evaluation command scores predictions on the original grid.
"""

from __future__ import annotations

import contextlib
from typing import Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
import torch
from torch import nn

from voxmmsd.io.labels import REGIONS


def dice(pred: np.ndarray, ref: np.ndarray) -> float:
    """Dice of two boolean masks; 1.0 when both are empty (the BraTS convention), 0.0 when one is."""
    p, r = pred.astype(bool), ref.astype(bool)
    total = int(p.sum()) + int(r.sum())
    if total == 0:
        return 1.0
    return 2.0 * float(np.logical_and(p, r).sum()) / total


def region_dice(pred: np.ndarray, ref: np.ndarray,
                regions: Mapping[str, Tuple[int, ...]] = REGIONS) -> Dict[str, float]:
    """Dice per region (WT, TC, ET) of two internal label maps (z, y, x)."""
    return {name: dice(np.isin(pred, values), np.isin(ref, values)) for name, values in regions.items()}


@torch.no_grad()
def predict_label(model: nn.Module, image: np.ndarray, patch_size: Sequence[int], overlap: float = 0.5,
                  blend: str = "gaussian", device: Optional[torch.device] = None,
                  amp_dtype: Optional[torch.dtype] = None) -> np.ndarray:
    """Label map (z, y, x) uint8 of a float image (C, z, y, x) in [0, 1] by sliding-window inference.

    Windows run on ``device``; the whole-case scores are stitched on the CPU.
    """
    from monai.inferers import sliding_window_inference

    device = device or torch.device("cpu")
    x = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
    ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
    with ctx:
        logits = sliding_window_inference(x, tuple(int(p) for p in patch_size), 1, model, overlap=overlap,
                                          mode=blend, sw_device=device, device=torch.device("cpu"))
    return torch.as_tensor(logits)[0].float().argmax(0).to(torch.uint8).numpy()


def validate(model: nn.Module, cases: Sequence, patch_size: Sequence[int], overlap: float = 0.5,
             blend: str = "gaussian", device: Optional[torch.device] = None,
             amp_dtype: Optional[torch.dtype] = None) -> Dict[str, object]:
    """Dice per region for each cached case, their means and ``"dice"``, the mean over WT, TC and ET.

    ``cases`` are :class:`~voxmmsd.data.cache.CachedCase` objects with labels. The model is
    put in eval mode and returned to its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    per_case: Dict[str, Dict[str, float]] = {}
    try:
        for case in cases:
            pred = predict_label(model, case.float_image(), patch_size, overlap, blend, device, amp_dtype)
            per_case[case.case_id] = region_dice(pred, np.asarray(case.label))
    finally:
        model.train(was_training)
    mean = {r: float(np.mean([d[r] for d in per_case.values()])) for r in REGIONS} if per_case else {}
    return {"per_case": per_case, "mean": mean, "dice": float(np.mean(list(mean.values()))) if mean else 0.0}

"""Validation during fine-tuning, through the shipped inference path; Dice per region.

:func:`validate` runs the network the way ``voxmmsd segment`` does by default: the whole
brain crop in one pass (:func:`voxmmsd.infer.window.whole`, padded to a multiple of 16),
the outputs decoded by :func:`voxmmsd.infer.postprocess.labels_from_scores` (argmax, or the
WT/TC/ET regions), voxels outside the brain set to 0. So the checkpoint kept as "best" is
chosen on the path users run. It scores on the preprocessed grid of the cache (cropped,
resampled); the evaluation command scores predictions on the original grid. The
label-efficiency experiment (:mod:`voxmmsd.experiment.score`) takes its label maps from
:func:`predict_whole` too, so a region-output network is read as regions everywhere.
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


def output_kind(cfg) -> str:  # cfg: FinetuneConfig
    """How the outputs of a network trained with ``cfg`` read: ``regions`` or ``classes``."""
    return "regions" if cfg.train.loss == "regions" else "classes"


def model_forward(model: nn.Module, device: Optional[torch.device] = None,
                  amp_dtype: Optional[torch.dtype] = None):  # -> voxmmsd.infer.window.Forward
    """A numpy forward ``x (1, C, D, H, W) -> logits (1, K, D, H, W)`` of ``model`` (no gradients)."""
    device = device or torch.device("cpu")

    @torch.no_grad()
    def forward(x: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)
        ctx = torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else contextlib.nullcontext()
        with ctx:
            out = model(t)
        return out.float().cpu().numpy()

    return forward


def predict_whole(model: nn.Module, image: np.ndarray, output: str = "classes",
                  device: Optional[torch.device] = None, amp_dtype: Optional[torch.dtype] = None) -> np.ndarray:
    """Label map (z, y, x) of a prepared image (C, z, y, x) by the product's whole-crop pass and decoding."""
    from voxmmsd.infer import window
    from voxmmsd.infer.postprocess import labels_from_scores

    scores = window.whole(image, model_forward(model, device, amp_dtype))
    label = labels_from_scores(scores, output)
    label[~np.any(image != 0, axis=0)] = 0  # as the predictor: nothing outside the brain
    return label


def validate(model: nn.Module, cases: Sequence, device: Optional[torch.device] = None,
             amp_dtype: Optional[torch.dtype] = None, output: str = "classes") -> Dict[str, object]:
    """Dice per region for each cached case, their means and ``"dice"``, the mean over WT, TC and ET.

    ``cases`` are :class:`~voxmmsd.data.cache.CachedCase` objects with labels, predicted by the
    shipped whole-crop path (:func:`predict_whole`). The model is put in eval mode and returned to
    its previous mode afterwards.
    """
    was_training = model.training
    model.eval()
    per_case: Dict[str, Dict[str, float]] = {}
    try:
        for case in cases:
            pred = predict_whole(model, case.float_image(), output, device, amp_dtype)
            per_case[case.case_id] = region_dice(pred, np.asarray(case.label))
    finally:
        model.train(was_training)
    mean = {r: float(np.mean([d[r] for d in per_case.values()])) for r in REGIONS} if per_case else {}
    return {"per_case": per_case, "mean": mean, "dice": float(np.mean(list(mean.values()))) if mean else 0.0}

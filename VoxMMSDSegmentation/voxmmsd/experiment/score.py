"""Score a fine-tuned network on held-out cases, on their original grids (BraTS metrics)."""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Sequence

import numpy as np
import torch

from voxmmsd.finetune.validate import predict_whole
from voxmmsd.io.labels import REGIONS, to_internal
from voxmmsd.preprocessing import Prepared, restore

log = logging.getLogger(__name__)


def restore_to_source(label: np.ndarray, meta: Dict[str, Any]) -> np.ndarray:
    """A label map on a cached case's grid -> the source reference grid, from the cache record (the crop undone,
    then the canonical orientation of :mod:`voxmmsd.io.orientation`)."""
    from voxmmsd.io.geometry import Geometry
    from voxmmsd.io.orientation import reorientation

    box = tuple(tuple(int(v) for v in b) for b in meta["box"])
    crop_shape = tuple(b[1] - b[0] for b in box)
    prepared = Prepared(np.empty((0,) + label.shape, np.float32), box, tuple(meta["full_shape"]),  # type: ignore
                        crop_shape, np.empty(0, bool))  # type: ignore[arg-type]
    full = restore(label, prepared)
    return reorientation(Geometry.from_dict(meta["geometry"])).undo(full) if meta.get("geometry") else full


def score_cases(model: torch.nn.Module, cached: Sequence, files: Dict[str, Any], output: str = "classes",
                device: torch.device = torch.device("cpu")) -> List[Dict[str, Any]]:
    """One row per case and region: Dice, HD95 (mm) and lesion-wise Dice on the source grid.

    The label maps come from the path validation and ``voxmmsd segment`` take (one pass over the brain
    crop, the outputs decoded as ``output``: ``classes`` or ``regions``, :func:`predict_whole`).

    ``cached``: :class:`~voxmmsd.data.cache.CachedCase` of the test cases; ``files``: their
    :class:`~voxmmsd.io.discovery.CaseFiles` by case id (the reference label is read from there).
    """
    from voxmmsd.io.reader import load_case
    from voxmmsd.metrics.evaluate import EvaluationConfig, evaluate_case

    rows = []
    model.eval()
    for case in cached:
        small = predict_whole(model, case.float_image(), output, device)
        pred = restore_to_source(small, case.meta)
        src = load_case(files[case.case_id])
        assert src.label is not None, f"{case.case_id} has no label map"
        ref = to_internal(src.label, case.meta.get("label_convention", "brats2023"), files[case.case_id].label)
        scores = evaluate_case(pred, ref, src.geometry.spacing, EvaluationConfig(subregions=False))
        for region in REGIONS:
            s = scores[region]
            rows.append({"case_id": case.case_id, "region": region, "dice": s["dice"], "hd95_mm": s["hd95_mm"],
                         "lesion_dice": s["lesion_dice"]})
    return rows

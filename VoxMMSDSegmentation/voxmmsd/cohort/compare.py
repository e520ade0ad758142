"""Two models on the same held-out cohort cases: scores through the shipped predictor, and the install rule.

Each model segments a case through :class:`voxmmsd.infer.predictor.Predictor` (its own preprocessing and
post-processing, as ``voxmmsd segment`` runs it) and is scored on the case's own (T1c) grid with
:func:`voxmmsd.metrics.evaluate.evaluate_case`: Dice per region (WT, TC, ET) and the volume error in mL.

The rule (:func:`decide`): the fine-tuned model is *not worse* when its mean Dice over WT, TC and ET on the
held-out cases is at least the starting model's (less ``tolerance``, 0 by default), and no region's mean
Dice drops by more than ``max_region_drop``. Only then is it installed without an override.
"""

from __future__ import annotations

import logging
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from voxmmsd.io.discovery import CaseFiles

log = logging.getLogger(__name__)

REGIONS = ("WT", "TC", "ET")
START, FINETUNED = "start", "finetuned"
#: per-case columns of ``comparison.csv``
COLUMNS = ("case_id", "fold", "model", "region", "dice", "volume_pred_ml", "volume_ref_ml", "volume_error_ml")


@dataclass(frozen=True)
class Rule:
    """When a fine-tuned model counts as not worse than the model it started from."""

    #: the largest drop of one region's mean Dice that is still accepted
    max_region_drop: float = 0.05
    #: how far the mean Dice over WT, TC and ET may fall short of the starting model's
    tolerance: float = 0.0

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)


def score_model(package_folder: Path, cases: Sequence[CaseFiles], fold_of: Mapping[str, int], model: str,
                device: str = "auto", on_case: Optional[Callable[[str], None]] = None) -> List[Dict[str, Any]]:
    """Rows of :data:`COLUMNS` for one model package on ``cases`` (each with its reviewed label)."""
    from voxmmsd.infer.predictor import Predictor, PredictorConfig
    from voxmmsd.metrics.evaluate import EvaluationConfig, evaluate_case, load_label
    from voxmmsd.models.package import load_package

    predictor = Predictor(load_package(Path(package_folder)),
                          PredictorConfig(device=device, uncertainty=False, register="off", skull_strip="off"))
    config = EvaluationConfig(lesion_wise=False, subregions=False)
    rows: List[Dict[str, Any]] = []
    for files in cases:
        assert files.label is not None, files.case_id
        prediction = predictor.predict_files(files)
        ref, geometry, _ = load_label(files.label, "brats2023", "reviewed segmentation")
        scores = evaluate_case(prediction.label, ref, geometry.spacing, config)
        for region in REGIONS:
            s = scores[region]
            rows.append({"case_id": files.case_id, "fold": fold_of.get(files.case_id, -1), "model": model,
                         "region": region, "dice": s["dice"], "volume_pred_ml": s["volume_pred_ml"],
                         "volume_ref_ml": s["volume_ref_ml"], "volume_error_ml": s["volume_error_ml"]})
        if on_case is not None:
            on_case(files.case_id)
    return rows


def _mean(values: Iterable[float]) -> float:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else float("nan")


def summarise(rows: Sequence[Mapping[str, Any]]) -> Dict[str, Dict[str, Dict[str, float]]]:
    """model -> region (and ``mean`` of WT, TC, ET) -> mean Dice, mean absolute volume error (mL), cases."""
    out: Dict[str, Dict[str, Dict[str, float]]] = {}
    for model in sorted({str(r["model"]) for r in rows}):
        per: Dict[str, Dict[str, float]] = {}
        for region in REGIONS:
            sel = [r for r in rows if r["model"] == model and r["region"] == region]
            per[region] = {"dice": _mean(r["dice"] for r in sel),
                           "abs_volume_error_ml": _mean(abs(float(r["volume_error_ml"])) for r in sel),
                           "cases": len(sel)}
        per["mean"] = {"dice": _mean(per[r]["dice"] for r in REGIONS),
                       "abs_volume_error_ml": _mean(per[r]["abs_volume_error_ml"] for r in REGIONS),
                       "cases": per[REGIONS[0]]["cases"]}
        out[model] = per
    return out


def decide(summary: Mapping[str, Mapping[str, Mapping[str, float]]], rule: Rule = Rule()) -> Dict[str, Any]:
    """``{"not_worse": bool, "reason": str, "difference": {region: finetuned - start Dice}}`` by :class:`Rule`."""
    if START not in summary or FINETUNED not in summary:
        return {"not_worse": False, "reason": "the comparison is incomplete (a model was not scored)",
                "difference": {}}
    a, b = summary[START], summary[FINETUNED]
    diff = {r: float(b[r]["dice"] - a[r]["dice"]) for r in (*REGIONS, "mean")}
    if not all(math.isfinite(v) for v in diff.values()):
        return {"not_worse": False, "reason": "no held-out case was scored", "difference": diff}
    worst = min(REGIONS, key=lambda r: diff[r])
    mean_text = (f"mean Dice of WT, TC, ET {b['mean']['dice']:.3f} (fine-tuned) against {a['mean']['dice']:.3f} "
                 f"(starting model)")
    if diff["mean"] < -rule.tolerance:
        return {"not_worse": False, "reason": f"worse on the held-out cases: {mean_text}", "difference": diff}
    if diff[worst] < -rule.max_region_drop:
        return {"not_worse": False, "difference": diff,
                "reason": f"{worst} Dice drops by {-diff[worst]:.3f} ({b[worst]['dice']:.3f} against "
                          f"{a[worst]['dice']:.3f}), more than the {rule.max_region_drop:.3f} allowed, although "
                          f"the {mean_text}"}
    return {"not_worse": True, "reason": f"not worse on the held-out cases: {mean_text}", "difference": diff}


def format_table(summary: Mapping[str, Mapping[str, Mapping[str, float]]]) -> str:
    """Aligned text: one row per region, Dice and |volume error| of both models and the Dice difference."""
    a, b = summary.get(START, {}), summary.get(FINETUNED, {})
    lines = [f"{'region':<7}{'Dice start':>11}{'Dice tuned':>11}{'change':>8}   "
             f"{'|vol err| start':>16}{'|vol err| tuned':>16}"]
    for region in (*REGIONS, "mean"):
        sa, sb = a.get(region, {}), b.get(region, {})
        da, db = sa.get("dice", float("nan")), sb.get("dice", float("nan"))
        lines.append(f"{region:<7}{da:11.3f}{db:11.3f}{db - da:+8.3f}   "
                     f"{sa.get('abs_volume_error_ml', float('nan')):13.1f} mL"
                     f"{sb.get('abs_volume_error_ml', float('nan')):13.1f} mL")
    return "\n".join(lines)

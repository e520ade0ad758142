"""Does the report's uncertainty rank the cases? (``voxmmsd experiment crossval uncertainty``)

Spearman's rho of each case's ``uncertainty`` in ``report.json`` (low-confidence fraction, TTA
disagreement) against its mean Dice of WT, TC and ET, and how many cases carried an uncertainty warning.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence

import numpy as np


def mean_dice_per_case(rows: Sequence[Mapping[str, Any]]) -> Dict[str, float]:
    """Case id -> mean Dice of WT, TC and ET of per-case rows."""
    dice: Dict[str, List[float]] = {}
    for r in rows:
        if r.get("region") in ("WT", "TC", "ET"):
            dice.setdefault(str(r["case_id"]), []).append(float(r["dice"]))
    return {c: float(np.mean(v)) for c, v in dice.items()}


def uncertainty_ranking(name: str, rows: Sequence[Mapping[str, Any]], pred: Path) -> Dict[str, Any]:
    """The record: case count, warned cases, the low-confidence range and Spearman's rho of each
    uncertainty against the mean Dice (where at least 3 cases have a value)."""
    from scipy.stats import spearmanr

    score = mean_dice_per_case(rows)
    cases = sorted(score)
    unsure, tta, warned = [], [], 0
    for c in cases:
        report = json.loads((Path(pred) / c / "report.json").read_text(encoding="utf-8"))
        u = report.get("uncertainty") or {}
        unsure.append(float(u.get("low_confidence_fraction", float("nan"))))
        tta.append(float(u["tta_disagreement"]) if u.get("tta_disagreement") is not None else float("nan"))
        warned += any(isinstance(w, dict) and w.get("kind") == "uncertainty" for w in report.get("warnings", []))
    record: Dict[str, Any] = {"name": name, "cases": len(cases), "warned": warned,
                              "low_confidence_fraction": {"min": float(np.nanmin(unsure)),
                                                          "max": float(np.nanmax(unsure))}}
    means = np.asarray([score[c] for c in cases])
    for key, values in (("low_confidence_fraction", unsure), ("tta_disagreement", tta)):
        v = np.asarray(values)
        ok = np.isfinite(v)
        if ok.sum() >= 3:
            rho, p = spearmanr(v[ok], means[ok])
            record[f"spearman_{key}_vs_mean_dice"] = {"rho": float(rho), "p": float(p), "n": int(ok.sum())}
    return record

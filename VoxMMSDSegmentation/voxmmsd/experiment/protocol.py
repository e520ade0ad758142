"""The model protocol's tables and its default-model rule (pure functions on per-case score rows).

Rows are those of ``voxmmsd evaluate``'s ``per_case.csv`` (``case_id``, ``region`` and metric
columns). Three tables, each for any set of cases (a model is only ever scored on cases it never
trained on):

- :func:`region_summary`: per region mean ± SD of Dice and lesion-wise Dice, mean HD95, median
  far false-positive volume (``fp_far_ml``: tumour more than 10 mm from the reference);
- :func:`by_group`: the same per group of cases (source, for leave-one-source-out);
- :func:`shift_table`: per pipeline shift, Dice and its drop against the clean input on the same
  cases (paired), and the far false-positive volume.

:func:`decide` applies the rule that chooses the default model, fixed before the last fold was
scored (docs/model-card.md, "The rule").
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence

import numpy as np

REGIONS = ("WT", "TC", "ET")


def _f(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return float("nan")


def scores(rows: Iterable[Mapping[str, Any]], metric: str, region: str,
           cases: Optional[Iterable[str]] = None) -> Dict[str, float]:
    """case id -> ``metric`` of ``region`` (only ``cases``, if given)."""
    keep = set(cases) if cases is not None else None
    return {str(r["case_id"]): _f(r.get(metric)) for r in rows
            if r.get("region") == region and (keep is None or str(r["case_id"]) in keep)}


def _stats(values: Sequence[float]) -> Dict[str, float]:
    v = np.array([x for x in values if np.isfinite(x)], dtype=float)
    return {"mean": float(v.mean()) if v.size else float("nan"),
            "sd": float(v.std(ddof=1)) if v.size > 1 else float("nan"),
            "median": float(np.median(v)) if v.size else float("nan"), "n": int(v.size)}


def region_summary(rows: Sequence[Mapping[str, Any]], cases: Optional[Iterable[str]] = None,
                   ) -> Dict[str, Dict[str, Dict[str, float]]]:
    """region -> metric (dice, lesion_dice, hd95_mm, fp_far_ml) -> mean, sd, median, n."""
    cases = list(cases) if cases is not None else None
    return {reg: {m: _stats(list(scores(rows, m, reg, cases).values()))
                  for m in ("dice", "lesion_dice", "hd95_mm", "fp_far_ml")} for reg in REGIONS}


def by_group(rows: Sequence[Mapping[str, Any]], groups: Mapping[str, str],
             cases: Optional[Iterable[str]] = None) -> Dict[str, Dict[str, Dict[str, Dict[str, float]]]]:
    """group name -> :func:`region_summary` over that group's cases (``groups``: case id -> group)."""
    keep = set(cases) if cases is not None else set(groups)
    out = {}
    for g in sorted(set(groups.values())):
        ids = [c for c, name in groups.items() if name == g and c in keep]
        if ids:
            out[g] = region_summary(rows, ids)
    return out


def mean_dice(summary: Mapping[str, Mapping[str, Mapping[str, float]]]) -> float:
    """The mean of the WT, TC and ET mean Dice of a :func:`region_summary`."""
    return float(np.mean([summary[r]["dice"]["mean"] for r in REGIONS]))


def shift_table(clean: Sequence[Mapping[str, Any]], shifted: Mapping[str, Sequence[Mapping[str, Any]]],
                cases: Optional[Iterable[str]] = None) -> Dict[str, Dict[str, Any]]:
    """shift -> {region: {dice, drop (clean - shifted, paired), worst_drop}, fp_far_ml_median, n}."""
    out: Dict[str, Dict[str, Any]] = {}
    for name, rows in shifted.items():
        entry: Dict[str, Any] = {}
        for reg in REGIONS:
            a = scores(clean, "dice", reg, cases)
            b = scores(rows, "dice", reg, cases)
            common = sorted(c for c in a if c in b and np.isfinite(a[c]) and np.isfinite(b[c]))
            drops = [a[c] - b[c] for c in common]
            entry[reg] = {"dice": _stats([b[c] for c in common])["mean"],
                          "drop": float(np.mean(drops)) if drops else float("nan"),
                          "worst_drop": float(np.max(drops)) if drops else float("nan"), "n": len(common)}
        fp = scores(rows, "fp_far_ml", "WT", cases)
        entry["fp_far_ml_median"] = _stats(list(fp.values()))["median"]
        entry["fp_far_ml_max"] = float(np.nanmax(list(fp.values()))) if fp else float("nan")
        out[name] = entry
    return out


def decide(candidate: Mapping[str, Any], baselines: Mapping[str, Mapping[str, Any]],
           max_source_wt_loss: float = 0.03) -> Dict[str, Any]:
    """The default-model rule. ``candidate`` and each baseline: ``{"clean": region_summary,
    "sources": by_group, "shift": shift_table}``, each baseline's computed on the cases it never
    trained on and the candidate's on the same cases (``baselines[name]["paired"]`` = the candidate's
    numbers on them). The candidate wins when, against every baseline, on those cases:

    1. its mean WT/TC/ET Dice (clean) is at least the baseline's;
    2. on every source its mean WT Dice is at most ``max_source_wt_loss`` below the baseline's;
    3. its mean WT/TC/ET Dice averaged over the shifts is at least the baseline's, and its median far
       false-positive volume (WT, over the shifts' cases) is at most the baseline's.
    """
    reasons: List[str] = []
    ok = True
    for name, base in baselines.items():
        mine = base["paired"]
        a, b = mean_dice(mine["clean"]), mean_dice(base["clean"])
        if a < b:
            ok = False
            reasons.append(f"{name}: clean mean Dice {a:.3f} < {b:.3f}")
        for src, summ in base["sources"].items():
            if src not in mine["sources"]:
                continue
            wa, wb = mine["sources"][src]["WT"]["dice"]["mean"], summ["WT"]["dice"]["mean"]
            if wa < wb - max_source_wt_loss:
                ok = False
                reasons.append(f"{name}: source {src} WT {wa:.3f} < {wb:.3f} - {max_source_wt_loss}")
        if base.get("shift") and mine.get("shift"):
            sa = float(np.mean([np.mean([v[r]["dice"] for r in REGIONS]) for v in mine["shift"].values()]))
            sb = float(np.mean([np.mean([v[r]["dice"] for r in REGIONS]) for v in base["shift"].values()]))
            fa = float(np.median([v["fp_far_ml_median"] for v in mine["shift"].values()]))
            fb = float(np.median([v["fp_far_ml_median"] for v in base["shift"].values()]))
            if sa < sb:
                ok = False
                reasons.append(f"{name}: mean Dice under shift {sa:.3f} < {sb:.3f}")
            if fa > fb:
                ok = False
                reasons.append(f"{name}: median far false positives under shift {fa:.1f} mL > {fb:.1f} mL")
    return {"default": ok, "reasons": reasons}

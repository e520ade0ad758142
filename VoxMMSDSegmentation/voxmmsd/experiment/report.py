"""Tables and the plot of a label-efficiency experiment."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from voxmmsd.io.atomic import atomic_path, write_text

RESULT_COLUMNS = ("arm", "n", "repeat", "case_id", "region", "dice", "hd95_mm", "lesion_dice")
SUMMARY_COLUMNS = ("arm", "n", "region", "cases", "dice_mean", "dice_sd", "hd95_mean_mm", "lesion_dice_mean")


def write_csv(path: Path, rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> None:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow(r)
    write_text(path, buf.getvalue())


def summarise(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Mean (and SD) over test cases and repeats, per arm, N and region (plus ``mean`` of WT/TC/ET)."""
    out = []
    keys = sorted({(r["arm"], int(r["n"])) for r in rows}, key=lambda k: (k[1], k[0]))
    for arm, n in keys:
        sel = [r for r in rows if r["arm"] == arm and int(r["n"]) == n]
        for region in ("WT", "TC", "ET", "mean"):
            if region == "mean":
                per: Dict[Any, List[float]] = {}
                for r in sel:
                    per.setdefault((r["repeat"], r["case_id"]), []).append(float(r["dice"]))
                dice = np.array([np.mean(v) for v in per.values()])
                hd = les = np.array([np.nan])
            else:
                rs = [r for r in sel if r["region"] == region]
                dice = np.array([float(r["dice"]) for r in rs])
                hd = np.array([float(r["hd95_mm"]) for r in rs])
                les = np.array([float(r["lesion_dice"]) for r in rs])
            out.append({"arm": arm, "n": n, "region": region, "cases": len(dice),
                        "dice_mean": round(float(np.mean(dice)), 4),
                        "dice_sd": round(float(np.std(dice, ddof=1)), 4) if len(dice) > 1 else 0.0,
                        "hd95_mean_mm": round(float(np.nanmean(hd)), 2) if np.isfinite(hd).any() else "",
                        "lesion_dice_mean": round(float(np.nanmean(les)), 4) if np.isfinite(les).any() else ""})
    return out


PAIRED_COLUMNS = ("n", "region", "repeats", "scratch_mean", "scratch_sd", "pretrained_mean", "pretrained_sd",
                  "diff_mean", "diff_sd", "pretrained_better", "case_pairs", "case_diff_mean", "case_p_value")


def _run_means(rows: Sequence[Dict[str, Any]], region: str) -> Dict[tuple, Dict[str, float]]:
    """(arm, n, repeat) -> {case_id: Dice} for a region (``mean``: the mean of WT, TC and ET per case)."""
    out: Dict[tuple, Dict[str, List[float]]] = {}
    for r in rows:
        if region == "mean" or r["region"] == region:
            out.setdefault((r["arm"], int(r["n"]), int(r["repeat"])), {}).setdefault(r["case_id"], []).append(
                float(r["dice"]))
    return {k: {c: float(np.mean(v)) for c, v in d.items()} for k, d in out.items()}


def _sd(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if len(x) > 1 else 0.0


def paired(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Pre-trained against scratch, paired by N, repeat (same training cases) and test case.

    Per N and region: mean +- SD over repeats of each arm's run-level Dice (the mean over the
    held-out cases), the paired difference pretrained - scratch (mean +- SD over repeats), how
    many repeats the pre-trained run won, and over all (repeat, case) pairs the mean difference
    and a two-sided paired t-test p-value (blank with fewer than 2 pairs or no spread).
    """
    out = []
    for region in ("WT", "TC", "ET", "mean"):
        runs = _run_means(rows, region)
        for n in sorted({k[1] for k in runs}):
            reps = sorted(k[2] for k in runs if k[0] == "scratch" and k[1] == n and ("pretrained", n, k[2]) in runs)
            if not reps:
                continue
            sc = np.array([np.mean(list(runs[("scratch", n, r)].values())) for r in reps])
            pt = np.array([np.mean(list(runs[("pretrained", n, r)].values())) for r in reps])
            cd = np.array([runs[("pretrained", n, r)][c] - runs[("scratch", n, r)][c] for r in reps
                           for c in runs[("scratch", n, r)] if c in runs[("pretrained", n, r)]])
            p_value: Any = ""
            if len(cd) > 1 and np.std(cd) > 0:
                from scipy import stats

                p_value = round(float(stats.ttest_1samp(cd, 0.0).pvalue), 4)
            out.append({"n": n, "region": region, "repeats": len(reps),
                        "scratch_mean": round(float(sc.mean()), 4), "scratch_sd": round(_sd(sc), 4),
                        "pretrained_mean": round(float(pt.mean()), 4), "pretrained_sd": round(_sd(pt), 4),
                        "diff_mean": round(float((pt - sc).mean()), 4), "diff_sd": round(_sd(pt - sc), 4),
                        "pretrained_better": int((pt > sc).sum()), "case_pairs": len(cd),
                        "case_diff_mean": round(float(cd.mean()), 4) if len(cd) else "", "case_p_value": p_value})
    return out


def plot(path: Path, summary: Sequence[Dict[str, Any]]) -> None:
    """Dice against N, one panel per region, one line per arm (error bars: SD over cases and repeats)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    regions = ("WT", "TC", "ET", "mean")
    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), sharey=True)
    for ax, region in zip(axes, regions):
        for arm, style in (("scratch", "o--"), ("pretrained", "s-")):
            pts = sorted((s["n"], s["dice_mean"], s["dice_sd"]) for s in summary
                         if s["arm"] == arm and s["region"] == region)
            if pts:
                ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], fmt=style,
                            capsize=3, label=arm)
        ax.set_title("mean of WT, TC, ET" if region == "mean" else region)
        ax.set_xlabel("labelled training cases (N)")
        ax.set_ylim(0, 1)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("Dice on held-out cases")
    axes[0].legend()
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(str(tmp), format="png", dpi=90)
    plt.close(fig)

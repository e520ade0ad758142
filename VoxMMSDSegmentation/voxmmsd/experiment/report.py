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
                per = {}
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

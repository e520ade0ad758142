"""What a fine-tuning run writes besides checkpoints: ``metrics.csv`` rows and the ``loss.png`` curves.

Events, ``log.txt`` and TensorBoard are written by :class:`voxmmsd.jobs.recorder.Recorder`.
"""

from __future__ import annotations

import csv
import io
import logging
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

from voxmmsd.io.atomic import atomic_path, write_text

log = logging.getLogger(__name__)

COLUMNS = ("epoch", "iteration", "loss", "dice_loss", "ce_loss", "lr", "val_WT", "val_TC", "val_ET", "val_mean",
           "elapsed_s")


def write_metrics_csv(path: Path, history: Sequence[Dict[str, Any]]) -> None:
    """One row per epoch (columns :data:`COLUMNS`; empty where there was no validation)."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(COLUMNS), extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for row in history:
        w.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in COLUMNS})
    write_text(path, buf.getvalue())


def plot_curves(path: Path, history: Sequence[Dict[str, Any]]) -> None:
    """Training loss and validation Dice against iteration, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    trained = [r for r in history if r.get("loss") is not None]
    its = [r["iteration"] for r in trained]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    a.plot(its, [r["loss"] for r in trained], label="Dice + CE")
    a.plot(its, [r["dice_loss"] for r in trained], label="Dice", alpha=0.6)
    a.plot(its, [r["ce_loss"] for r in trained], label="cross-entropy", alpha=0.6)
    a.set_xlabel("iteration")
    a.set_ylabel("training loss (epoch mean)")
    a.legend()
    plotted = False
    for key in ("val_WT", "val_TC", "val_ET", "val_mean"):
        pts = [(r["iteration"], r[key]) for r in history if r.get(key) is not None]
        if pts:
            b.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=key[4:])
            plotted = True
    b.set_xlabel("iteration")
    b.set_ylabel("validation Dice")
    b.set_ylim(0, 1)
    if plotted:
        b.legend()
    else:
        b.text(0.5, 0.5, "no validation cases", ha="center", transform=b.transAxes)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(str(tmp), format="png", dpi=90)
    plt.close(fig)


def history_row(epoch: int, iteration: int, losses: Dict[str, float], lr: float,
                val: Optional[Dict[str, float]], elapsed: float) -> Dict[str, Any]:
    row: Dict[str, Any] = {"epoch": epoch, "iteration": iteration, "loss": losses.get("loss"),
                           "dice_loss": losses.get("dice"), "ce_loss": losses.get("ce"), "lr": lr,
                           "elapsed_s": round(elapsed, 1)}
    for r in ("WT", "TC", "ET"):
        row[f"val_{r}"] = None if val is None else val.get(r)
    row["val_mean"] = None if val is None else sum(val[r] for r in ("WT", "TC", "ET")) / 3.0
    return row


__all__: List[str] = ["write_metrics_csv", "plot_curves", "history_row"]

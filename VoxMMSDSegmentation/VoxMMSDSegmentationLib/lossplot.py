"""A loss-curve PNG from a run's events (matplotlib, Agg; shown by the training panel)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Optional, Tuple


def plot_losses(history: List[Tuple[int, Dict[str, float]]], path: Path, title: str = "",
                size_px: Tuple[int, int] = (480, 260)) -> bool:
    """Draw one line per loss name over iterations into ``path``; False if there is nothing to draw."""
    if not history:
        return False
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure
    from voxmmsd.io.atomic import atomic_path

    names = sorted({name for _, losses in history for name in losses})
    dpi = 100
    fig = Figure(figsize=(size_px[0] / dpi, size_px[1] / dpi), dpi=dpi)
    ax = fig.add_subplot(111)
    for name in names:
        points = [(it, losses[name]) for it, losses in history if name in losses]
        ax.plot([p[0] for p in points], [p[1] for p in points], label=name, linewidth=1.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss")
    if title:
        ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(Path(path)) as tmp:
        fig.savefig(str(tmp), format="png")
    return True


def loss_picture(history: List[Tuple[int, Dict[str, float]]], run_dir: Path, target: Path) -> Optional[Path]:
    """The picture the training panel shows: ``target`` drawn from the events, else the engine's
    ``run_dir/loss.png`` (e.g. before matplotlib is installed in Slicer), else None."""
    try:
        if plot_losses(history, target, title=Path(run_dir).name):
            return Path(target)
    except ImportError:  # matplotlib not installed yet
        pass
    engine_png = Path(run_dir) / "loss.png"
    return engine_png if engine_png.is_file() else None

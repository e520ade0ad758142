"""Tables of an evaluation: the per-case CSV, the summary statistics, and a printable summary."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any, Dict, List, Sequence

import numpy as np

from voxmmsd.io.atomic import write_text
from voxmmsd.io.csvsafe import cell
from voxmmsd.metrics.evaluate import METRICS, REGION_ORDER

CASE_COLUMNS: Sequence[str] = ("case_id", "region", "status") + METRICS
STATISTICS: Sequence[str] = ("mean", "std", "median", "q25", "q75")
SUMMARY_COLUMNS: Sequence[str] = ("region", "statistic", "n") + METRICS


def _stat(values: np.ndarray, name: str) -> float:
    if values.size == 0:
        return float("nan")
    if name == "mean":
        return float(np.mean(values))
    if name == "std":
        return float(np.std(values, ddof=1)) if values.size > 1 else 0.0
    q = {"median": 50.0, "q25": 25.0, "q75": 75.0}[name]
    return float(np.percentile(values, q))


def summarise(rows: Sequence[Dict[str, Any]]) -> List[Dict[str, Any]]:
    """Statistics over cases per region: rows (region, statistic, n, one column per metric).

    NaN values (e.g. lesion-wise scores of single labels, relative volume error of an empty
    reference) are left out of their column; ``n`` counts the cases scored in the region.
    """
    out: List[Dict[str, Any]] = []
    for region in REGION_ORDER:
        sel = [r for r in rows if r["region"] == region]
        if not sel:
            continue
        for stat in STATISTICS:
            row: Dict[str, Any] = {"region": region, "statistic": stat, "n": len(sel)}
            for m in METRICS:
                vals = np.asarray([float(r[m]) for r in sel], dtype=float)
                row[m] = _stat(vals[np.isfinite(vals)], stat)
            out.append(row)
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(round(value, 6))
    return cell(value) if isinstance(value, str) else str(value)  # a case id never starts a formula


def to_csv(rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([_cell(r.get(c, "")) for c in columns])
    return buf.getvalue()


def write_csv(path: Path, rows: Sequence[Dict[str, Any]], columns: Sequence[str]) -> Path:
    """Write ``rows`` as CSV (empty cell for NaN), atomically."""
    write_text(Path(path), to_csv(rows, columns))
    return Path(path)


def read_csv(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def format_summary(summary: Sequence[Dict[str, Any]]) -> str:
    """A fixed-width table: per region, mean ± sd of the main metrics."""
    shown = (("dice", "Dice", 3), ("hd95_mm", "HD95 mm", 2), ("lesion_dice", "LW Dice", 3),
             ("lesion_hd95_mm", "LW HD95 mm", 2), ("sensitivity", "Sens", 3), ("specificity", "Spec", 4),
             ("volume_error_ml", "Vol err ml", 2))
    by = {(r["region"], r["statistic"]): r for r in summary}
    header = f"{'Region':6s} {'n':>4s} " + " ".join(f"{label:>18s}" for _, label, _ in shown)
    lines = [header, "-" * len(header)]
    for region in REGION_ORDER:
        mean, std = by.get((region, "mean")), by.get((region, "std"))
        if mean is None or std is None:
            continue
        cells = []
        for key, _, digits in shown:
            m, s = mean[key], std[key]
            cells.append(f"{'-':>18s}" if math.isnan(m) else f"{m:>{9}.{digits}f} ± {s:<6.{digits}f}".rjust(18))
        lines.append(f"{region:6s} {mean['n']:>4d} " + " ".join(cells))
    return "\n".join(lines)

"""The batch summary (``summary.csv``): one layout and one writer for the engine batch
(:mod:`voxmmsd.infer.batch`) and the Slicer batch (``VoxMMSDSegmentationLib.batch``).

One row per case folder that was found, in discovery order, with its status (engine:
``done`` / ``skipped`` / ``refused`` / ``failed``, and ``interrupted`` for the cases a stopped batch did
not finish; Slicer: ``finished`` / ``refused`` / ``failed`` / ``cancelled``), the plausibility verdict
(``plausible`` / ``doubtful`` / ``implausible``, see :mod:`voxmmsd.plausibility`), the volumes in mL, the
seconds it took, its warnings and, for a failure, the reason. Text cells never start a spreadsheet formula
(:mod:`voxmmsd.io.csvsafe`).
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, Iterable, List

from voxmmsd.io.atomic import write_text
from voxmmsd.io.csvsafe import cell

REGION_COLUMNS = ("WT", "TC", "ET", "NETC", "SNFH", "RC")
SUMMARY_COLUMNS = (["case_id", "status", "plausibility"] + [f"{r}_ml" for r in REGION_COLUMNS]
                   + ["seconds", "warnings", "error"])


@dataclass
class CaseResult:
    """What happened to one case of a batch."""

    case_id: str
    #: done | skipped | refused | failed | interrupted (engine); finished | refused | failed | cancelled (Slicer)
    status: str
    seconds: float = 0.0
    volumes_ml: Dict[str, float] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    error: str = ""
    plausibility: str = ""  # plausible | doubtful | implausible ("" when not segmented)


def _text(w: Any) -> str:
    return str(w.get("message", "")) if isinstance(w, dict) else str(w)


def summary_row(result: Any) -> Dict[str, str]:
    """The CSV row of one result (any object with ``case_id, status, seconds, volumes_ml, warnings, error``
    and, optionally, ``plausibility``); text cells are escaped with :func:`voxmmsd.io.csvsafe.cell`."""
    vols = getattr(result, "volumes_ml", None) or {}
    row = {"case_id": cell(result.case_id), "status": cell(result.status),
           "plausibility": cell(str(getattr(result, "plausibility", "") or ""))}
    for k in REGION_COLUMNS:
        row[f"{k}_ml"] = ("%.4f" % float(vols[k])) if k in vols else ""
    row["seconds"] = "%.2f" % float(getattr(result, "seconds", 0.0) or 0.0)
    row["warnings"] = cell(" | ".join(_text(w) for w in (getattr(result, "warnings", None) or [])))
    row["error"] = cell(" ".join(str(getattr(result, "error", "") or "").split()))  # one line
    return row


def summary_csv(results: Iterable[Any]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SUMMARY_COLUMNS, lineterminator="\n")
    w.writeheader()
    for r in results:
        w.writerow(summary_row(r))
    return buf.getvalue()


def write_summary(path: Path, results: Iterable[Any]) -> Path:
    """Write ``summary.csv`` atomically (never half a file)."""
    write_text(Path(path), summary_csv(results))
    return Path(path)


def read_summary(path: Path) -> List[Dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))

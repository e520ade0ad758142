"""What the module shows of the engine's plausibility verdict (``report.json`` ``plausibility``).

Pure functions on the report (tested without Slicer): a status-line text, and the text of the
dialog the module opens for an implausible (or refused) result; ``None`` where nothing is to be
shown. The checks themselves run in the engine (``voxmmsd.plausibility``, docs/plausibility.md).
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional

VERDICT_WORDS = {"plausible": "plausible", "doubtful": "DOUBTFUL: review it before use",
                 "implausible": "IMPLAUSIBLE: do not use it without checking"}


def record(report: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The report's ``plausibility`` record ({} for engines that did not write one)."""
    value = (report or {}).get("plausibility")
    return dict(value) if isinstance(value, Mapping) else {}


def verdict(report: Optional[Mapping[str, Any]]) -> str:
    """``plausible``, ``doubtful``, ``implausible``, or "" when the report has no verdict."""
    return str(record(report).get("verdict", ""))


def status_line(report: Optional[Mapping[str, Any]]) -> str:
    """E.g. ``Plausibility: DOUBTFUL: review it before use (lesion_coverage)``; "" without a verdict."""
    rec = record(report)
    word = VERDICT_WORDS.get(str(rec.get("verdict", "")))
    if word is None:
        return ""
    names: List[str] = list(rec.get("failed") or []) + list(rec.get("doubtful") or [])
    return f"Plausibility: {word}" + (f" ({', '.join(names)})" if names else "")


def failing_checks(report: Optional[Mapping[str, Any]]) -> List[str]:
    """One line per failed (then doubtful) check: its meaning, value and threshold."""
    rec = record(report)
    lines = []
    for status in ("fail", "doubtful"):
        for check in rec.get("checks") or []:
            if not isinstance(check, Mapping) or check.get("status") != status:
                continue
            limit = check.get("threshold") or {}
            bound = limit.get("fail") if status == "fail" else limit.get("doubtful")
            side = "at least" if limit.get("direction") == "min" else "at most"
            value = check.get("value")
            shown = f"{value:.3g}" if isinstance(value, (int, float)) else "?"
            limit_text = f"{bound:g}" if isinstance(bound, (int, float)) else "?"
            lines.append(f"- {check.get('name')} = {shown} ({status}; should be {side} {limit_text}): "
                         f"{check.get('meaning', '')}")
    return lines


def dialog_text(report: Optional[Mapping[str, Any]], refused: bool = False) -> Optional[str]:
    """The text of the dialog for an implausible or refused result; None when no dialog is due."""
    if not refused and verdict(report) != "implausible":
        return None
    head = ("The result was refused as implausible: no segmentation was added to the scene."
            if refused else
            "This segmentation is IMPLAUSIBLE: it does not look like a tumour on these images, or an input is "
            "not the sequence it is said to be.")
    advice = ("Check that each volume is assigned to the right sequence (T1 native, T1 post-contrast, T2, FLAIR) "
              "and that all four are of the same patient and exam; then review every slice before any use.")
    lines = failing_checks(report)
    return "\n\n".join([head, advice] + (["Checks:\n" + "\n".join(lines)] if lines else []))

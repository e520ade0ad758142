"""The model protocol's result from the scored arms (``voxmmsd experiment crossval protocol``).

Reads ``OUT/ARM/EVAL/per_case.csv``: ``eval`` (clean k-fold), ``eval-SHIFT`` per shift and, for the
candidate, ``OUT/loso/eval`` (leave-one-source-out). A baseline ``NAME=MODEL`` is scored only on the
cases MODEL never trained on, and the candidate's numbers are paired on exactly those cases. Writes
``OUT/protocol.json`` and ``OUT/protocol.md`` (:mod:`voxmmsd.experiment.protocol_tables`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Sequence, Tuple

from voxmmsd.experiment.crossval import cases_seen_by
from voxmmsd.experiment.protocol import by_group, decide, region_summary, shift_table

#: the pipeline shifts of the protocol (docs/model-protocol.md)
SHIFTS = ("thick5mm", "bias", "zscore", "uint8", "ras")


def arm_rows(out: Path, arm: str, ev: str) -> List[Dict[str, str]]:
    """The scored rows of ``OUT/ARM/EV/per_case.csv`` (status ok); none when the arm was not scored so."""
    from voxmmsd.metrics.report import read_csv

    path = Path(out) / arm / ev / "per_case.csv"
    return [r for r in read_csv(path) if r.get("status", "ok") == "ok"] if path.exists() else []


def arm_tables(out: Path, arm: str, cases: Sequence[str], sources: Mapping[str, str],
               shifts: Sequence[str]) -> Dict[str, Any]:
    """The clean, per-source and shift tables of one arm on ``cases``."""
    clean = arm_rows(out, arm, "eval")
    shifted = {sh: arm_rows(out, arm, f"eval-{sh}") for sh in shifts}
    return {"clean": region_summary(clean, cases), "sources": by_group(clean, sources, cases),
            "shift": shift_table(clean, {k: v for k, v in shifted.items() if v}, cases), "cases": len(cases)}


def protocol_result(out: Path, splits: Path, candidate: str, baselines: Sequence[Tuple[str, Path]],
                    shifts: Sequence[str] = SHIFTS) -> Dict[str, Any]:
    """The protocol's tables of the candidate (every case), leave-one-source-out and each baseline (the
    cases its model never saw, with the candidate paired on them), and the rule's verdict."""
    sources = json.loads(Path(splits).read_text(encoding="utf-8"))["sources"]
    everything = sorted(sources)
    result: Dict[str, Any] = {"candidate": candidate, "cases": len(everything),
                              candidate: arm_tables(out, candidate, everything, sources, shifts)}
    loso = arm_rows(out, "loso", "eval")
    if loso:
        result["loso"] = {"clean": region_summary(loso, everything), "sources": by_group(loso, sources)}
    tables_of: Dict[str, Any] = {}
    for name, model in baselines:
        unseen = sorted(set(everything) - set(cases_seen_by(Path(model))))
        tables = arm_tables(out, name, unseen, sources, shifts)
        tables["paired"] = arm_tables(out, candidate, unseen, sources, shifts)
        tables["unseen"] = unseen
        tables_of[name] = tables
        result[name] = tables
    result["rule"] = decide(result[candidate], tables_of)
    return result


def write_protocol(out: Path, result: Mapping[str, Any]) -> Tuple[Path, Path]:
    """``OUT/protocol.json`` and ``OUT/protocol.md`` (each written whole, then renamed)."""
    from voxmmsd.experiment.protocol_tables import markdown
    from voxmmsd.io.atomic import write_text

    js, md = Path(out) / "protocol.json", Path(out) / "protocol.md"
    write_text(js, json.dumps(result, indent=1))
    write_text(md, markdown(result))
    return js, md

"""Score a cross-validation arm and read scored arms side by side (``score``, ``table``, ``compare``).

``score`` evaluates the pooled out-of-fold predictions (``voxmmsd evaluate``) and writes
``OUT/NAME/EVAL/crossval.json``: mean ± SD per region over cases and over fold means
(:func:`~voxmmsd.experiment.crossval.summarise_folds`), overall and per source.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from voxmmsd.experiment import cv_engine
from voxmmsd.experiment.crossval import format_table, paired_difference, read_splits, restrict_folds, summarise_folds
from voxmmsd.experiment.cv_data import case_folders, link_cases
from voxmmsd.experiment.cv_run import Arm

#: the metrics of the side-by-side table and the paired comparison
TABLE_METRICS = ("dice", "lesion_dice", "hd95_mm")


def split_sources(splits: Path) -> Dict[str, str]:
    """Case id -> source of a split file (empty when it records none)."""
    return dict(json.loads(Path(splits).read_text(encoding="utf-8")).get("sources", {}))


def summarise_by_source(rows: Sequence[Mapping[str, Any]], folds: Sequence[Sequence[str]],
                        sources: Mapping[str, str]) -> Dict[str, Any]:
    """:func:`summarise_folds` of each source's cases alone (folds without a case of it left out)."""
    out = {}
    for src in sorted(set(sources.values())):
        sub = [[c for c in f if sources.get(c) == src] for f in folds]
        out[src] = summarise_folds(rows, [f for f in sub if f])
    return out


def score_arm(arm: Arm, pred: Optional[Path] = None, eval_name: Optional[str] = None) -> Dict[str, Any]:
    """Evaluate the arm's out-of-fold predictions (default ``OUT/NAME/pred``) into ``OUT/NAME/EVAL``
    (default ``eval``) and write its ``crossval.json``; the record written."""
    from voxmmsd.io.atomic import write_text
    from voxmmsd.metrics.report import read_csv

    drop = list(arm.exclude)
    folds = [f for f in restrict_folds(read_splits(arm.splits), drop) if f]
    exp = arm.folder
    exp.mkdir(parents=True, exist_ok=True)
    pred = Path(pred) if pred else exp / "pred"
    ev = exp / (eval_name or "eval")
    ref = Path(arm.data)
    if drop:  # score exactly the held-out cases that remain: an excluded case is not a missing prediction
        ref = link_cases(case_folders(arm.data), sorted(c for f in folds for c in f), exp / f"ref-{ev.name}")
    rows = read_csv(cv_engine.evaluate_predictions(pred, ref, ev, exp / "log.txt"))
    record = {"name": arm.name, "pred": str(pred), "summary": summarise_folds(rows, folds),
              "by_source": summarise_by_source(rows, folds, split_sources(arm.splits)), "excluded": drop}
    write_text(ev / "crossval.json", json.dumps(record, indent=1))
    return record


def score_text(record: Mapping[str, Any]) -> str:
    """The tables ``score`` prints: every case, then each source's cases."""
    parts = [format_table(record["summary"])]
    for src, summ in record["by_source"].items():
        parts.append(f"\n{src} cases only:\n{format_table(summ)}")
    return "\n".join(parts)


def arm_item(out: Path, item: str, file: str) -> Path:
    """``NAME`` or ``NAME:EVAL`` -> ``OUT/NAME/EVAL/FILE`` (EVAL defaults to ``eval``)."""
    name, _, ev = item.partition(":")
    return Path(out) / name / (ev or "eval") / file


def side_by_side(out: Path, items: Sequence[str], source: Optional[str] = None) -> str:
    """A Markdown table of several scored arms (``NAME[:EVAL]`` items): mean ± SD over cases (SD over folds)."""
    from voxmmsd.errors import InputError

    rows: List[Tuple[str, Mapping[str, Any]]] = []
    for item in items:
        path = arm_item(out, item, "crossval.json")
        if not path.is_file():
            raise InputError(f"{path} does not exist: score the arm first (voxmmsd experiment crossval score).")
        data = json.loads(path.read_text(encoding="utf-8"))
        rows.append((item, data["by_source"][source] if source else data["summary"]))
    lines = ["| recipe | region | " + " | ".join(f"{m} mean ± SD cases (SD folds)" for m in TABLE_METRICS) + " | n |",
             "|" + "---|" * (len(TABLE_METRICS) + 3)]
    for item, summ in rows:
        for region, per in summ.items():
            cells = []
            for m in TABLE_METRICS:
                v = per[m]
                fmt = "{:.1f}" if m == "hd95_mm" else "{:.3f}"
                cells.append(f"{fmt.format(v['mean'])} ± {fmt.format(v['sd_cases'])} ({fmt.format(v['sd_folds'])})")
            lines.append(f"| {item} | {region} | " + " | ".join(cells) + f" | {per['dice']['n']} |")
    return "\n".join(lines)


def compare_arms(out: Path, a: str, b: str, sources: Optional[Mapping[str, str]] = None,
                 source: Optional[str] = None) -> Dict[str, Any]:
    """Paired comparison of two scored arms (``NAME[:EVAL]``), B minus A, over the cases both scored, per
    metric of :data:`TABLE_METRICS`; with ``source`` only that source's cases."""
    from voxmmsd.metrics.report import read_csv

    rows_a, rows_b = read_csv(arm_item(out, a, "per_case.csv")), read_csv(arm_item(out, b, "per_case.csv"))
    if source:
        sources = sources or {}
        rows_a = [r for r in rows_a if sources.get(r.get("case_id", "")) == source]
        rows_b = [r for r in rows_b if sources.get(r.get("case_id", "")) == source]
    return {m: paired_difference(rows_a, rows_b, metric=m) for m in TABLE_METRICS}


def comparison_text(a: str, b: str, record: Mapping[str, Mapping[str, Mapping[str, Any]]],
                    source: Optional[str] = None) -> str:
    """The Markdown table ``compare`` prints."""
    lines = [f"{b} minus {a}" + (f" ({source} cases)" if source else ""),
             "| metric | region | n | A | B | B - A (SD) | B better / A better | Wilcoxon p |",
             "|---|---|---|---|---|---|---|---|"]
    for m, per in record.items():
        for region, r in per.items():
            lines.append(f"| {m} | {region} | {r['n']} | {r['mean_a']:.3f} | {r['mean_b']:.3f} | "
                         f"{r['mean_diff']:+.3f} ({r['sd_diff']:.3f}) | {r['b_better']} / {r['a_better']} | "
                         f"{r['wilcoxon_p']:.3g} |")
    return "\n".join(lines)

"""Segment a folder of cases: a progress bar, the next case read while the current one computes,
finished cases skipped on re-run, a bad case reported and skipped, a summary CSV at the end.

``--shard i/n`` (0 <= i < n) takes every n-th case starting at i; under ``torchrun`` the
shard defaults to ``RANK/WORLD_SIZE``, so a cohort splits across GPUs or machines. A
sharded run writes ``summary.shard-<i>-of-<n>.csv``, an unsharded one ``summary.csv``.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

from voxmmsd.errors import ConfigError, VoxMMSDError
from voxmmsd.infer.outputs import REPORT, write_outputs
from voxmmsd.io.atomic import ensure_writable_dir, write_text
from voxmmsd.io.discovery import CaseFiles, DataSet
from voxmmsd.io.labels import BRATS2023

log = logging.getLogger(__name__)

REGION_COLUMNS = ("WT", "TC", "ET", "NETC", "SNFH", "RC")


@dataclass
class CaseResult:
    case_id: str
    status: str  # done | skipped | failed
    seconds: float = 0.0
    volumes_ml: Dict[str, float] = field(default_factory=dict)
    warnings: List[str] = field(default_factory=list)
    error: str = ""


def parse_shard(text: Optional[str]) -> Tuple[int, int]:
    """``"i/n"`` -> (i, n) with 0 <= i < n; None -> the torchrun rank, else (0, 1)."""
    if not text:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        return (int(os.environ.get("RANK", "0")), world) if world > 1 else (0, 1)
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(f"--shard {text!r}: write it as i/n, e.g. 0/4 (the first of four shards).") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(f"--shard {text!r}: need 0 <= i < n.")
    return i, n


def select_shard(cases: Sequence[CaseFiles], index: int, count: int) -> List[CaseFiles]:
    return list(cases[index::count])


def is_done(out_dir: Path, case_id: str) -> bool:
    return (out_dir / case_id / REPORT).is_file()


def _summary_csv(results: Sequence[CaseResult]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["case_id", "status"] + [f"{r}_ml" for r in REGION_COLUMNS] + ["seconds", "warnings", "error"])
    for r in results:
        vols = [("%.4f" % r.volumes_ml[k]) if k in r.volumes_ml else "" for k in REGION_COLUMNS]
        w.writerow([r.case_id, r.status] + vols + ["%.2f" % r.seconds, " | ".join(r.warnings), r.error])
    return buf.getvalue()


def _from_report(out_dir: Path, case_id: str) -> CaseResult:
    try:
        rep = json.loads((out_dir / case_id / REPORT).read_text(encoding="utf-8"))
        return CaseResult(case_id, "skipped", 0.0, rep.get("volumes_ml", {}), rep.get("warnings", []))
    except (OSError, ValueError):
        return CaseResult(case_id, "skipped")


def run_batch(predictor: Any, dataset: DataSet, out_dir: Path, *, register: bool = False,
              convention: str = BRATS2023, shard: Tuple[int, int] = (0, 1), events: Any = None,
              progress_bar: bool = True, qc: bool = True, redo: bool = False) -> List[CaseResult]:
    """Segment every case of ``dataset`` (this shard's share) into ``out_dir/<case_id>/``."""
    from tqdm import tqdm

    out_dir = ensure_writable_dir(Path(out_dir))
    cases = select_shard(dataset.cases, *shard)
    model = {"id": predictor.package.id, "version": predictor.package.version}
    results: List[CaseResult] = []
    todo = []
    for c in cases:
        if not redo and is_done(out_dir, c.case_id):
            results.append(_from_report(out_dir, c.case_id))
        else:
            todo.append(c)
    if events:
        events.emit("segment", "start", total=len(todo), message=f"{len(todo)} case(s) to segment, "
                    f"{len(cases) - len(todo)} already done")
    bar = tqdm(total=len(todo), desc="segment", unit="case", disable=not progress_bar)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="reader") as reader:
        nxt: Optional[Future] = reader.submit(predictor.load, todo[0], register) if todo else None
        for k, files in enumerate(todo):
            fut = nxt
            nxt = reader.submit(predictor.load, todo[k + 1], register) if k + 1 < len(todo) else None
            t0 = time.perf_counter()
            try:
                case = fut.result()  # type: ignore[union-attr]
                t_read = time.perf_counter() - t0
                pred = predictor.predict(case)
                pred.timings_s = {"read": t_read, **pred.timings_s}
                write_outputs(pred, out_dir / files.case_id, model, predictor.package.label_table, convention, qc)
                res = CaseResult(files.case_id, "done", time.perf_counter() - t0, pred.volumes_ml, pred.warnings)
                if events:
                    for w in pred.warnings:
                        events.emit("segment", "warning", message=f"{files.case_id}: {w}")
            except (VoxMMSDError, OSError, ValueError, RuntimeError, MemoryError) as exc:
                msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.error("case %s failed: %s", files.case_id, msg)
                res = CaseResult(files.case_id, "failed", time.perf_counter() - t0, error=msg)
                if events:
                    events.emit("segment", "warning", message=f"{files.case_id} skipped: {msg}")
            results.append(res)
            bar.update(1)
            if events:
                events.emit("segment", "progress", iteration=k + 1, total=len(todo),
                            message=f"{files.case_id}: {res.status}")
    bar.close()
    order = {c.case_id: i for i, c in enumerate(cases)}
    results.sort(key=lambda r: order.get(r.case_id, 0))
    name = "summary.csv" if shard[1] == 1 else f"summary.shard-{shard[0]}-of-{shard[1]}.csv"
    write_text(out_dir / name, _summary_csv(results))
    return results

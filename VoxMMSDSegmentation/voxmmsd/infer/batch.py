"""Segment a folder of cases: a progress bar, the next case read while the current one computes,
finished cases skipped on re-run, a bad case reported and skipped, a summary CSV at the end.

A batch never stops for one case: :func:`discover_cases` turns every sub-folder that looked
like a case but cannot be used (two FLAIRs, no recognisable image, nested too deep, a
duplicate case id) into a failed row of ``summary.csv`` with the reason, next to the cases
that ran; the exit status is non-zero when any case failed. Each case folder is held with
:func:`voxmmsd.infer.outputs.claim_output` (a lock, stale staging cleaned, the free disk space
checked before the compute, the folder removed again when the case fails).

``--shard i/n`` (0 <= i < n) takes every n-th case starting at i; under ``torchrun`` the
shard defaults to ``RANK/WORLD_SIZE``, so a cohort splits across GPUs or machines. A
sharded run writes ``summary.shard-<i>-of-<n>.csv``, an unsharded one ``summary.csv``.
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

from voxmmsd.errors import ConfigError, InputError, VoxMMSDError
from voxmmsd.infer.options import SegmentOptions
from voxmmsd.infer.outputs import REPORT
from voxmmsd.infer.prefetch import Prefetch
from voxmmsd.infer.summary import REGION_COLUMNS, CaseResult, summary_csv, write_summary
from voxmmsd.io.atomic import ensure_writable_dir
from voxmmsd.io.discovery import CaseFiles, DataSet, find_case, find_dataset
from voxmmsd.jobs.signals import pending

log = logging.getLogger(__name__)

__all__ = ["REGION_COLUMNS", "CaseResult", "discover_cases", "parse_shard", "run_batch", "select_shard"]

#: folders that are never case folders (archive tools' metadata)
NOT_CASES = frozenset({"__MACOSX", "$RECYCLE.BIN", "System Volume Information"})

#: a batch entry: a case to segment, or a case folder that already failed at discovery
Entry = Union[CaseFiles, CaseResult]


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


def select_shard(cases: Sequence[Any], index: int, count: int) -> List[Any]:
    return list(cases[index::count])


def _subfolders(folder: Path, exclude: Sequence[Path] = ()) -> List[Path]:
    skip = {p.resolve() for p in exclude}
    return sorted(p for p in folder.iterdir()
                  if p.is_dir() and not p.name.startswith(".") and p.name not in NOT_CASES and p.resolve() not in skip)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _scan(folder: Path, depth: int, entries: List[Entry], exclude: Sequence[Path]) -> None:
    for sub in _subfolders(folder, exclude):
        try:
            case = find_case(sub, require_all=False)
        except InputError as exc:  # two FLAIRs, two label maps, ...: this case fails, the others run
            entries.append(CaseResult(sub.name, "failed", error=_first_line(exc)))
            continue
        if case.sequences:
            entries.append(case)
            continue
        inner = _subfolders(sub, exclude)
        if inner and depth > 1:
            _scan(sub, depth - 1, entries, exclude)  # a grouping folder (a site, a cohort)
        elif inner:
            entries.append(CaseResult(sub.name, "failed", error=(
                f"{sub} holds no image of a sequence, only sub-folders: case folders are searched at most two "
                f"levels deep. Move the case folders up.")))
        else:
            entries.append(CaseResult(sub.name, "failed", error=(
                f"{sub} holds no image of a sequence (empty, or no file named like a sequence). Add the "
                f"four sequences ('<case>-t1n/-t1c/-t2w/-t2f.nii.gz') or remove the folder.")))


def discover_cases(root: Path, exclude: Sequence[Path] = ()) -> List[Entry]:
    """Every case folder under ``root`` in order: a :class:`CaseFiles` to segment, or a failed
    :class:`CaseResult` saying why the folder cannot be used. Raises :class:`InputError` only when
    ``root`` holds no case at all. Folders in ``exclude`` (e.g. the output folder) are not cases.
    """
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"Data set folder not found: {root}.")
    if (root / "imagesTr").is_dir() or (root / "imagesTs").is_dir():
        return list(find_dataset(root, require_all=False).cases)
    entries: List[Entry] = []
    _scan(root, 2, entries, exclude)
    if not any(isinstance(e, CaseFiles) for e in entries):
        try:
            single = find_case(root, require_all=False)
        except InputError:
            single = None
        if single is not None and single.sequences:
            return [single]  # the folder itself is one case
    if not entries:
        raise InputError(f"No cases found in {root}. Expected one sub-folder per case holding the four sequences, "
                         f"or an nnU-Net folder with imagesTr/ (and labelsTr/).")
    out: List[Entry] = []
    seen: Dict[str, Optional[Path]] = {}
    for e in entries:
        if isinstance(e, CaseFiles):
            if e.case_id in seen:
                out.append(CaseResult(e.case_id, "failed", error=(
                    f"two case folders are named {e.case_id!r}: {seen[e.case_id]} and {e.folder}; this one was not "
                    f"segmented. Rename one of the folders.")))
                continue
            seen[e.case_id] = e.folder
        out.append(e)
    return out


def is_done(out_dir: Path, case_id: str) -> bool:
    return (out_dir / case_id / REPORT).is_file()


_summary_csv = summary_csv  # the one writer, shared with the Slicer batch (voxmmsd.infer.summary)


def _from_report(out_dir: Path, case_id: str) -> CaseResult:
    """The result of a case done in an earlier run (``skipped``; ``refused`` when that run refused it)."""
    try:
        rep = json.loads((out_dir / case_id / REPORT).read_text(encoding="utf-8"))
        warnings = [w.get("message", "") if isinstance(w, dict) else str(w) for w in rep.get("warnings", [])]
        verdict = str((rep.get("plausibility") or {}).get("verdict", ""))
        return CaseResult(case_id, "refused" if rep.get("refused") else "skipped", 0.0, rep.get("volumes_ml", {}),
                          warnings, plausibility=verdict)
    except (OSError, ValueError, AttributeError):
        return CaseResult(case_id, "skipped")


def batch_exit_code(results: Sequence[CaseResult]) -> int:
    """1 when a case failed; else 3 (:data:`~voxmmsd.plausibility.verdict.REFUSED_EXIT_CODE`) when a case
    was refused as implausible; else 0."""
    from voxmmsd.plausibility.verdict import REFUSED_EXIT_CODE

    if any(r.status == "failed" for r in results):
        return 1
    return REFUSED_EXIT_CODE if any(r.status == "refused" for r in results) else 0


def run_batch(models: Any, dataset: Union[DataSet, Sequence[Entry]], out_dir: Path,
              options: Optional[SegmentOptions] = None, *, shard: Tuple[int, int] = (0, 1), events: Any = None,
              progress_bar: bool = True, redo: bool = False) -> List[CaseResult]:
    """Segment every case of ``dataset`` (this shard's share) into ``out_dir/<case_id>/``, each through
    :func:`voxmmsd.infer.pipeline.segment_case` (the path of a single case).

    ``models``: a :class:`~voxmmsd.infer.pipeline.Models` (or a built predictor, used for every case that
    its package does not give another model). ``dataset`` is a :class:`DataSet` or the entries of
    :func:`discover_cases` (failed entries go to the summary as they are). With
    ``options.on_implausible="refuse"`` an implausible case gets its report but no label map and the
    status ``refused``. Returns one result per entry, in discovery order.
    """
    from tqdm import tqdm

    from voxmmsd.infer.pipeline import Models, read_case, segment_case
    from voxmmsd.plausibility.verdict import refuses

    options = options or SegmentOptions()
    refuses("", options.on_implausible)  # an unknown choice fails before any work
    if not isinstance(models, Models):
        models = Models(options, models)
    out_dir = ensure_writable_dir(Path(out_dir))
    entries: List[Entry] = list(dataset.cases) if isinstance(dataset, DataSet) else list(dataset)
    mine = select_shard(entries, *shard)
    slots: List[Optional[CaseResult]] = [None] * len(mine)  # one result per entry, in discovery order
    todo: List[CaseFiles] = []
    where: List[int] = []
    for i, c in enumerate(mine):
        if isinstance(c, CaseResult):
            log.error("case folder %s not usable: %s", c.case_id, c.error)
            slots[i] = c
        elif not redo and is_done(out_dir, c.case_id):
            slots[i] = _from_report(out_dir, c.case_id)
        else:
            todo.append(c)
            where.append(i)
    if events:
        events.emit("segment", "start", total=len(todo), message=f"{len(todo)} case(s) to segment, "
                    f"{len(mine) - len(todo)} already done or not usable")
        for r in slots:
            if r is not None and r.status == "failed":
                events.emit("segment", "warning", message=f"{r.case_id} skipped: {r.error}", case_id=r.case_id,
                            kind="input")

    def load(files: CaseFiles) -> Any:  # read in a thread while the previous case is segmented
        return read_case(files, options, models)

    name = "summary.csv" if shard[1] == 1 else f"summary.shard-{shard[0]}-of-{shard[1]}.csv"
    bar = tqdm(total=len(todo), desc="segment", unit="case", disable=not progress_bar)
    k = 0
    case_started = time.time()
    with Prefetch(load, todo, depth=1, name="reader") as reader:  # the next case is read while this one computes
        try:
            for k, (files, fut) in enumerate(reader):
                t0 = time.perf_counter()
                case_started = time.time()
                try:
                    # an unfinished result of ours is replaced whole; a finished one only with --redo (else skipped
                    # above); result-named files VoxMMSD did not write only with --redo
                    done = segment_case(files, out_dir / files.case_id, options, models, events=events,
                                        overwrite=redo, option="--redo", read=fut.result)  # type: ignore[union-attr]
                    pred = done.prediction
                    res = CaseResult(files.case_id, done.status, time.perf_counter() - t0, pred.volumes_ml,
                                     pred.warnings, plausibility=pred.verdict)
                except (VoxMMSDError, OSError, ValueError, RuntimeError, MemoryError, IndexError) as exc:
                    stop = pending()
                    if stop is not None:  # a termination signal whose cleanup failed in turn: still a stop
                        raise stop from exc
                    msg = _first_line(exc)
                    log.error("case %s failed: %s", files.case_id, msg)
                    res = CaseResult(files.case_id, "failed", time.perf_counter() - t0, error=msg)
                    if events:
                        events.emit("segment", "warning", message=f"{files.case_id} skipped: {msg}",
                                    case_id=files.case_id, kind="input")
                slots[where[k]] = res
                bar.update(1)
                if events:
                    events.emit("segment", "progress", iteration=k + 1, total=len(todo),
                                message=f"{files.case_id}: {res.status}", case_id=files.case_id)
        except KeyboardInterrupt as exc:  # Ctrl-C or SIGTERM (voxmmsd.jobs.signals): say what was done, then stop
            reader.close()
            bar.close()
            _interrupted(slots, mine, where[k] if todo else None, str(exc) or "Ctrl-C", out_dir, case_started)
            write_summary(out_dir / name, slots)
            log.warning("batch interrupted: %s lists the %d case(s) done before the stop", out_dir / name,
                        sum(r is not None and r.status in ("done", "skipped") for r in slots))
            raise
    bar.close()
    results = [r for r in slots if r is not None]
    write_summary(out_dir / name, results)
    return results


def _interrupted(slots: List[Optional[CaseResult]], entries: Sequence[Any], current: Optional[int],
                 why: str, out_dir: Path, started: float) -> None:
    """Fill the rows of the cases an interrupted batch did not finish (status ``interrupted``). The case being
    segmented when the signal came is ``done`` when its result was already complete (its ``report.json``, the
    last file moved in, written since the case ``started``: the stop came while the lock was being released)."""
    for i, slot in enumerate(slots):
        if slot is not None:
            continue
        if i == current and _written_since(out_dir / entries[i].case_id / REPORT, started):
            done = _from_report(out_dir, entries[i].case_id)
            slots[i] = CaseResult(done.case_id, "done", time.time() - started, done.volumes_ml, done.warnings)
            continue
        if i == current:
            error = f"interrupted ({why}) while being segmented; nothing of it was kept"
        else:
            error = f"not started: the batch was interrupted ({why}); run the same command again to segment it"
        slots[i] = CaseResult(entries[i].case_id, "interrupted", error=error)


def _written_since(path: Path, started: float) -> bool:
    try:
        return path.stat().st_mtime >= started - 0.05  # (file times use a coarse clock, a few ms behind)
    except OSError:
        return False

"""Fine-tune a model on a cohort and find out, by cross-validation on the cohort, whether it got better.

``voxmmsd cohort finetune COHORT --out RUN --model START``:

1. The cohort's cases are dealt into ``k`` folds (``min(folds, cases)``; seeded, saved in ``RUN/learn.json``).
2. For each fold, ``START`` is fine-tuned on the other folds' cases (``RUN/folds/fold<k>/``, a complete
   ``voxmmsd finetune`` run warm-started from ``START``, or from a pre-training run given as ``init``).
3. Each held-out case is segmented by ``START`` and by its fold's model through the shipped predictor,
   both with ``START``'s post-processing, and scored against the reviewed segmentation
   (:mod:`voxmmsd.cohort.compare`): ``RUN/comparison.csv`` (per case and region) and
   ``RUN/comparison.json`` (means per region, paired differences, the install decision).
4. ``START`` is fine-tuned on every case (``RUN/final/``): the candidate model ``RUN/final/model``, with its
   provenance in ``training.cohort``. ``voxmmsd cohort install RUN`` installs it (only when not worse,
   unless forced).

The run holds ``RUN/.voxmmsd.lock``; ``RUN/stop.requested`` (or SIGINT/SIGTERM) stops the fine-tuning under
way at a checkpoint. Running the same command again keeps every finished piece and resumes a stopped one;
a cohort whose cases changed since the run started is refused (start a new run).
"""

from __future__ import annotations

import csv
import logging
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional

from voxmmsd import __version__
from voxmmsd.cohort import layout
from voxmmsd.cohort.compare import COLUMNS, FINETUNED, START, Rule, decide, score_model, summarise
from voxmmsd.cohort.relay import CohortEvents, StageRelay
from voxmmsd.errors import InputError
from voxmmsd.finetune.config import FinetuneConfig, with_settings
from voxmmsd.io.atomic import write_json, write_text
from voxmmsd.jobs.run_folder import RunFolder

log = logging.getLogger(__name__)

PLAN = "learn.json"
COMPARISON = "comparison.json"
COMPARISON_CSV = "comparison.csv"


@dataclass(frozen=True)
class LearnOptions:
    folds: int = 5
    seed: int = 0
    rule: Rule = field(default_factory=Rule)
    device: str = "auto"


def candidate_folder(run_dir: Path) -> Path:
    """The model package a finished cohort run proposes for installation."""
    return RunFolder(Path(run_dir) / "final").model


def fold_folder(run_dir: Path, k: int) -> Path:
    return Path(run_dir) / "folds" / f"fold{k}"


def read_comparison(run_dir: Path) -> Dict[str, Any]:
    """``RUN/comparison.json``; :class:`InputError` when the run has not compared its models yet."""
    import json

    path = Path(run_dir) / COMPARISON
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(f"{run_dir} holds no finished comparison ({path} is missing): the cohort run has not "
                         f"finished. Run 'voxmmsd cohort finetune' to completion first.") from None
    except ValueError as exc:
        raise InputError(f"{path} is damaged ({exc}); run the cohort fine-tuning again.") from None


def make_plan(case_ids: List[str], start: Any, init: Optional[Path], cfg: FinetuneConfig, cohort: Path,
              options: LearnOptions) -> Dict[str, Any]:
    from voxmmsd.experiment.crossval import make_folds

    k = min(options.folds, len(case_ids))
    folds = make_folds({c: "cohort" for c in case_ids}, k, options.seed)
    return {"cohort": str(Path(cohort).resolve()), "cases": list(case_ids), "folds": folds,
            "start_model": {"id": start.id, "version": start.version, "name": start.name,
                            "folder": str(start.folder)},
            "init": str(Path(init).resolve()) if init else None, "seed": options.seed,
            "rule": options.rule.to_dict(), "finetune": cfg.to_dict()}


def _check_same_plan(path: Path, plan: Mapping[str, Any]) -> None:
    import json

    if not path.is_file():
        return
    old = json.loads(path.read_text(encoding="utf-8"))
    keys = ("cohort", "cases", "folds", "start_model", "init", "finetune")
    changed = [k for k in keys if old.get(k) != plan.get(k)]
    if changed:
        raise InputError(f"{path.parent} holds a cohort run with other {', '.join(changed)} (e.g. cases added "
                         f"or removed since it started). Start a new run with another --out folder; this one "
                         f"is kept as it is.")


def learn(cohort_root: Path, run_dir: Path, start_spec: Optional[str], cfg: FinetuneConfig,
          options: LearnOptions = LearnOptions(), init: Optional[Path] = None, stream: Any = None) -> str:
    """Run (or complete) a cohort fine-tuning run; returns ``"done"`` or ``"stopped"``. See the module docstring.

    ``cfg``: the settings of every fine-tuning (:func:`voxmmsd.cohort.recipe.cohort_config`);
    ``stream``: also write the events there (``--progress json``).
    """
    from voxmmsd.io.lock import FolderLock
    from voxmmsd.jobs.recorder import attach_log_file, detach_log_file
    from voxmmsd.models.catalog import resolve_model

    cohort = layout.open_cohort(cohort_root)
    ids = layout.case_ids(cohort)
    if len(ids) < 2:
        raise InputError(f"The cohort {cohort.root} holds {len(ids)} case(s); fine-tuning and comparing needs at "
                         f"least 2 (one to train on, one held out). Add reviewed cases first.")
    start = resolve_model(start_spec)
    run = RunFolder(Path(run_dir))
    lock = FolderLock(run.root, "cohort fine-tuning run").acquire()
    handler = attach_log_file(run.log)
    events = CohortEvents(run.events, stream)
    try:
        run.clear_stop_request()
        plan = make_plan(ids, start, init, cfg, cohort.root, options)
        _check_same_plan(run.root / PLAN, plan)
        write_json(run.root / PLAN, plan)
        write_text(run.config, cfg.to_yaml())
        try:
            return _run(cohort, run, start, cfg, plan, options, events)
        except Exception as exc:
            events.emit("error", message=str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise
    finally:
        events.close()
        detach_log_file(handler)
        lock.release()


def _finetune(data: Path, folder: Path, cfg: FinetuneConfig, device: str, stop_file: Path,
              events: CohortEvents, offset: int, label: str) -> str:
    from voxmmsd.finetune.loop import finetune
    from voxmmsd.jobs.stop import StopFlag

    sub = RunFolder(folder)
    if (sub.model / "model.json").is_file():
        log.info("%s: finished earlier, kept", label)
        return "done"
    events.progress(offset, label)
    with StageRelay(events, sub.events, offset, label):
        result = finetune(data, folder, cfg, resume=sub.has_checkpoint(), device=device,
                          stop=StopFlag(stop_file))
    return result.status


def _run(cohort: layout.Cohort, run: RunFolder, start: Any, cfg: FinetuneConfig, plan: Mapping[str, Any],
         options: LearnOptions, events: CohortEvents) -> str:
    from voxmmsd.cohort.install import adopt_inference, record_provenance
    from voxmmsd.io.discovery import find_dataset

    folds: List[List[str]] = plan["folds"]
    iters = cfg.train.iterations
    n = len(plan["cases"])
    events.total = iters * (len(folds) + 1) + 2 * n
    events.emit("start", iteration=0, total=events.total, cases=n, folds=len(folds),
                start_model=plan["start_model"], message=f"cohort of {n} cases, {len(folds)} folds, starting from "
                                                         f"{start.id} {start.version}")
    base = with_settings(cfg, data={"cache_dir": str(run.root / "cache"), "labels": "brats2023", "val": 0})
    for k, held in enumerate(folds):
        train = sorted(c for c in plan["cases"] if c not in held)
        fold_cfg = with_settings(base, data={"train": train},
                                 package={"onnx": False, "model_id": "cohort-fold", "version": f"{k}.0.0"})
        label = f"fold {k + 1}/{len(folds)}: fine-tuning on {len(train)} case(s)"
        if _finetune(cohort.cases_dir, fold_folder(run.root, k), fold_cfg, options.device, run.stop_file,
                     events, k * iters, label) != "done":
            return _stopped(events, run)
        adopt_inference(RunFolder(fold_folder(run.root, k)).model, start.meta)
    events.progress(len(folds) * iters, "comparing the models on the held-out cases")
    cases = find_dataset(cohort.cases_dir, require_all=True, require_labels=True).by_id()
    fold_of = {c: k for k, f in enumerate(folds) for c in f}
    done = len(folds) * iters

    def scored(case_id: str) -> None:
        nonlocal done
        done += 1
        events.progress(done, f"scored {case_id}")

    rows = score_model(start.folder, [cases[c] for c in plan["cases"]], fold_of, START, options.device, scored)
    for k, held in enumerate(folds):
        if RunFolder(run.root).stop_file.exists():
            return _stopped(events, run)
        rows += score_model(RunFolder(fold_folder(run.root, k)).model, [cases[c] for c in held], fold_of,
                            FINETUNED, options.device, scored)
    comparison = _write_comparison(run.root, rows, plan, options)
    verdict = comparison["decision"]
    events.emit("message", message=("not worse: " if verdict["not_worse"] else "worse: ") + verdict["reason"],
                decision=verdict)
    final_cfg = with_settings(base, data={"train": None},
                              package={"onnx": cfg.package.onnx, "model_id": f"{start.id}-cohort",
                                       "version": "0.0.0"})
    if _finetune(cohort.cases_dir, run.root / "final", final_cfg, options.device, run.stop_file, events,
                 done, f"final model: fine-tuning on all {n} cases") != "done":
        return _stopped(events, run)
    candidate = candidate_folder(run.root)
    adopt_inference(candidate, start.meta)
    record_provenance(candidate, plan, comparison)
    events.emit("done", iteration=events.total, total=events.total,
                message=("Not worse than the starting model: ready to install. " if verdict["not_worse"] else
                         "WORSE than the starting model: not installed unless forced. ") + verdict["reason"],
                outputs={"comparison": str(run.root / COMPARISON), "model": str(candidate),
                         "not_worse": verdict["not_worse"]})
    return "done"


def _stopped(events: CohortEvents, run: RunFolder) -> str:
    events.emit("stopped", iteration=events.done, total=events.total,
                message=f"stopped; run the same command again to continue ({run.root})")
    return "stopped"


def _write_comparison(run_dir: Path, rows: List[Dict[str, Any]], plan: Mapping[str, Any],
                      options: LearnOptions) -> Dict[str, Any]:
    from voxmmsd.experiment.crossval import paired_difference

    summary = summarise(rows)
    start_rows = [r for r in rows if r["model"] == START]
    tuned_rows = [r for r in rows if r["model"] == FINETUNED]
    comparison = {
        "date": layout.now_iso(), "voxmmsd": __version__, "cases": len(plan["cases"]), "folds": plan["folds"],
        "start_model": plan["start_model"], "init": plan["init"], "rule": options.rule.to_dict(),
        "protocol": f"{len(plan['folds'])}-fold cross-validation on the cohort: each fold's model was fine-tuned "
                    f"from the starting model on the other folds' cases; both models segmented the held-out "
                    f"cases through the shipped predictor and were scored on the T1c grid",
        "summary": summary,
        "paired_dice": paired_difference(start_rows, tuned_rows, "dice"),
        "decision": decide(summary, options.rule),
    }
    with open(Path(run_dir) / (COMPARISON_CSV + ".tmp"), "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(COLUMNS))
        writer.writeheader()
        writer.writerows(rows)
    Path(run_dir, COMPARISON_CSV + ".tmp").replace(Path(run_dir) / COMPARISON_CSV)
    write_json(Path(run_dir) / COMPARISON, comparison)
    return comparison


def stdout_stream(progress: str) -> Any:
    return sys.stdout if progress == "json" else None
